"""What a model name that names nothing, or a model whose files cannot be fetched, is told: fast, once, by name.

A name is checked against what its library lists before anything is loaded,
so a typo fails at once with the closest names. Downloads are preceded by one
short check that their host answers (cached per process): when it does not,
Hugging Face models are read from the local cache only, instead of retrying
requests that cannot succeed, and torch-hub files that are not cached fail at
once. Users who are online take the libraries' own download paths.
"""

from __future__ import annotations

import difflib
import http.client
import os
import ssl
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from urllib.parse import urlsplit

from .._defaults import DEFAULT_IMAGE_MODEL

# A host that answers within this is usable; one that does not would make every download wait and retry. The
# connection and the answer each get _TIMEOUT_S; the whole check (name lookup, TLS handshake) at most _WAIT_S.
_TIMEOUT_S = 2.5
_WAIT_S = 4.0
# A host found unreachable is asked again after this, so that a long session that comes online can download.
_RECHECK_UNREACHABLE_S = 60.0
_reachability = {}  # (scheme, host[:port]) -> (answered, time.monotonic() of the check)
_reachability_lock = threading.Lock()
_offline_lock = threading.Lock()
_offline_state = {"depth": 0, "saved": None}


class ModelNotFoundError(ValueError):
    """A model name that names no model: a typo, or a local model folder that does not exist.

    Attributes
    ----------
    model : str
        The name as it was given.
    suggestions : list of str
        The closest names the library knows (empty when none is close, or the library cannot list them).
    """

    def __init__(self, message, *, model=None, suggestions=()):
        super().__init__(message)
        self.model = model
        self.suggestions = list(suggestions)

    def __reduce__(self):  # keep the attributes when it travels between processes (Dask, joblib)
        return _rebuild, (type(self), str(self), {"model": self.model, "suggestions": self.suggestions})


class WeightsUnavailableError(OSError):
    """A model whose files are not on this machine and cannot be downloaded now (offline, host down).

    An ``OSError``, as the download errors it replaces were; its message names the model and how to
    provide the files offline.

    Attributes
    ----------
    model : str
        The model name as it was given.
    """

    def __init__(self, message, *, model=None):
        super().__init__(message)
        self.model = model

    def __str__(self):  # OSError's own would format the arguments as (errno, strerror)
        return self.args[0]

    def __reduce__(self):
        return _rebuild, (type(self), str(self), {"model": self.model})


def _rebuild(kind, message, attributes):
    return kind(message, **attributes)


def unknown_model(message, model, name, candidates, *, prefix="", listing=""):
    """A :class:`ModelNotFoundError` for ``model``, whose part ``name`` is not in ``candidates``.

    Parameters
    ----------
    message : str
        What is wrong, naming the model.
    model : str
        The model name as given.
    name : str
        The part compared with ``candidates`` (the name without its library prefix).
    candidates : iterable of str
        The names the library knows.
    prefix : str, default=""
        What the suggestions are shown with (``"timm:"``), so that they can be copied as they are.
    listing : str, default=""
        Where the user finds every name (``"timm.list_models()"``).
    """
    close = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=5, cutoff=0.6)
    suggestions = [prefix + c for c in close]
    if suggestions:
        message += "; did you mean " + ", ".join(repr(s) for s in suggestions) + "?"
    elif listing:
        message += "; no known name is close"
    if listing:
        message += f" ({listing} {'list' if ' and ' in listing else 'lists'} them all)"
    return ModelNotFoundError(message, model=model, suggestions=suggestions)


# -- is a download host reachable? ---------------------------------------------------------------
def _answers(url, timeout):
    """Whether a HEAD request to ``url``'s host gets an HTTP answer, through the proxy the environment names
    and with the certificates the download libraries use (certifi's, when installed)."""
    try:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        context = ssl.create_default_context()
    parts = urlsplit(url)
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/", method="HEAD")
    try:
        urllib.request.urlopen(request, timeout=timeout, context=context).close()
    except urllib.error.HTTPError:
        return True  # an error status is still an answer: the host is there
    except (OSError, ValueError, http.client.HTTPException):
        return False  # no name, no route, refused, timed out, a proxy that refuses, a certificate that fails
    return True


def _within(seconds, ask, *args):
    """``ask(*args)``, or False when it has not answered after ``seconds``.

    In a thread, so that a name lookup that hangs (it ignores socket timeouts) cannot hold the caller.
    """
    answered = []
    thread = threading.Thread(target=lambda: answered.append(ask(*args)), name="skmm-reachability", daemon=True)
    thread.start()
    thread.join(seconds)
    return bool(answered and answered[0])


def reachable(url):
    """Whether ``url``'s host answers an HTTP request within a few seconds.

    Asked once per process and host: a positive answer is kept, a negative
    one for a minute.

    Parameters
    ----------
    url : str
        Any URL on the host (``"https://huggingface.co"``).

    Returns
    -------
    answered : bool
    """
    parts = urlsplit(url)
    key = (parts.scheme, parts.netloc)
    with _reachability_lock:
        known = _reachability.get(key)
    if known is not None and (known[0] or time.monotonic() - known[1] < _RECHECK_UNREACHABLE_S):
        return known[0]
    answered = bool(parts.netloc) and _within(_WAIT_S, _answers, url, _TIMEOUT_S)
    with _reachability_lock:
        _reachability[key] = (answered, time.monotonic())
    return answered


def unreachable_reason(url):
    """None when ``url``'s host answers, else why nothing can be downloaded from it (for a message)."""
    return None if reachable(url) else f"{urlsplit(url).hostname} cannot be reached from this machine"


def hub_unreachable_reason():
    """None when the Hugging Face Hub answers, else why nothing can be downloaded from it."""
    from huggingface_hub import constants

    with _offline_lock:  # the user's setting, not the one hub_offline() holds meanwhile
        user_offline = _offline_state["saved"] if _offline_state["depth"] else constants.HF_HUB_OFFLINE
    if user_offline:
        return "Hugging Face's offline mode is on (HF_HUB_OFFLINE)"
    return unreachable_reason(constants.ENDPOINT)


def hub_cache_folder():
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


@contextmanager
def hub_offline():
    """huggingface_hub's offline mode (what ``HF_HUB_OFFLINE=1`` sets) for the block: files come from its
    cache and no request is tried, hence none is retried."""
    from huggingface_hub import constants

    with _offline_lock:
        if _offline_state["depth"] == 0:
            _offline_state["saved"] = constants.HF_HUB_OFFLINE
            constants.HF_HUB_OFFLINE = True
        _offline_state["depth"] += 1
    try:
        yield
    finally:
        with _offline_lock:
            _offline_state["depth"] -= 1
            if _offline_state["depth"] == 0:
                constants.HF_HUB_OFFLINE = _offline_state["saved"]


# -- image weights: torch hub files and Hugging Face files ---------------------------------------
IMAGE_OFFLINE_HINT = (f"or pass weights=PATH (a state-dict file) to ImageEncoder, or use skmm's offline model "
                      f"{DEFAULT_IMAGE_MODEL!r}.")


def torch_hub_file(url):
    """Where torch's hub (``load_state_dict_from_url``) keeps the download of ``url``."""
    import torch.hub

    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlsplit(url).path))


@contextmanager
def url_weights(model, url):
    """Around a library call that downloads ``url`` through torch's hub cache: fail at once when the file is
    not cached and its host does not answer; a failed download becomes a :class:`WeightsUnavailableError`."""
    cached = torch_hub_file(url)
    how = (f"To run offline, download {url} on a machine that is online and put it at {cached}, "
           + IMAGE_OFFLINE_HINT)
    if not os.path.isfile(cached):
        reason = unreachable_reason(url)
        if reason:
            raise WeightsUnavailableError(f"the pretrained weights of image model {model!r} cannot be "
                                          f"downloaded: {reason} and they are not in torch's cache. {how}",
                                          model=model)
    try:
        yield
    except OSError as exc:
        raise WeightsUnavailableError(f"the pretrained weights of image model {model!r} could not be downloaded "
                                      f"({type(exc).__name__}: {exc}). {how}", model=model) from exc


@contextmanager
def hub_files(model, what, how):
    """Around a call that reads ``model``'s files through the Hugging Face Hub: from the local cache only when
    the hub does not answer; files that cannot be had become a :class:`WeightsUnavailableError`.

    ``what``: the files, in the message (``"the pretrained weights of image model 'timm:resnet18'"``);
    ``how``: how to provide them offline. Yields None when the hub answers, else why it cannot be used
    (then pass ``local_files_only=True`` where the library takes it).
    """
    reason = hub_unreachable_reason()
    try:
        if reason is None:
            yield None
        else:
            with hub_offline():
                yield reason
    except OSError as exc:
        if reason is None:
            raise WeightsUnavailableError(f"{what} could not be downloaded ({type(exc).__name__}: {exc}). {how}",
                                          model=model) from exc
        raise WeightsUnavailableError(f"{what} cannot be downloaded: {reason} and they are not in the Hugging "
                                      f"Face cache ({hub_cache_folder()}). {how}", model=model) from exc
