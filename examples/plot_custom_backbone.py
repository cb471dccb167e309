"""
A torchvision backbone with a TF-IDF text pipeline
==================================================

Any torchvision or timm model can be the image encoder (``weights="DEFAULT"`` downloads the
library's pretrained weights; here random weights keep the example offline), and any
scikit-learn transformer can encode a modality: a TF-IDF + SVD pipeline for the text.
"""

from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline

from skmm import ImageEncoder, ModalityFusion
from skmm.datasets import make_multimodal_classification

X, y = make_multimodal_classification(n_samples=120, image_size=64, random_state=2)
fusion = ModalityFusion([
    ("image", ImageEncoder("torchvision:resnet18", weights=None, image_size=96), "image"),
    ("text", make_pipeline(TfidfVectorizer(), TruncatedSVD(16, random_state=0)), "text"),
], method="concat")
model = Pipeline([("fuse", fusion), ("clf", LogisticRegression(C=3, max_iter=2000))])
print("3-fold CV accuracy:", cross_val_score(model, X, y, cv=3).mean().round(3))
print("features:", model.fit(X, y).named_steps["fuse"].get_feature_names_out()[[0, -1]])
