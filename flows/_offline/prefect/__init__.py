"""A stand-in for Prefect inside a Kaggle notebook: tasks and flows run as plain function calls.

Kaggle's image has no Prefect, and a notebook runs one flow once, offline: orchestration adds
nothing there. flows/kernel.py puts this folder first on sys.path before the kit is imported.
Any name or submodule not defined here is a no-op, so the kit's imports keep working.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import logging
import sys
import types
from contextlib import nullcontext

IS_STAND_IN = True


def _noop(*args, **kwargs):
    return None


class _Anything:
    """A placeholder: callable, combinable, and empty."""

    def __call__(self, *args, **kwargs):
        return None

    def __add__(self, other):
        return self

    __radd__ = __sub__ = __add__

    def __getattr__(self, name):
        return self


class _Future:
    def __init__(self, value):
        self.value = value

    def result(self, *args, **kwargs):
        return self.value

    def wait(self, *args, **kwargs):
        return None


class _Callable:
    """A task or flow: calling it calls the function."""

    def __init__(self, function, **options):
        self.fn, self.options = function, options
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def with_options(self, **options):
        return self

    def submit(self, *args, **kwargs):
        return _Future(self.fn(*args, **kwargs))

    def map(self, *iterables, **kwargs):
        return [self.submit(*arguments, **kwargs) for arguments in zip(*iterables)]


def task(function=None, **options):
    if function is None:
        return lambda inner: _Callable(inner, **options)
    return _Callable(function, **options)


flow = task


def get_run_logger(*args, **kwargs):
    return logging.getLogger("headstart")


def tags(*names):
    return nullcontext()


def _module_getattr(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Anything()


class _StandInModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import prefect.anything` gives a module of no-ops (with the few helpers the kit uses)."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith(__name__ + "."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = _module_getattr
        module.task, module.flow, module.get_run_logger = task, flow, get_run_logger
        module.disable_run_logger = nullcontext
        module.exponential_backoff = lambda backoff_factor=1: [backoff_factor * 2 ** n for n in range(10)]
        module.wait = _noop
        return module

    def exec_module(self, module):
        return None


sys.meta_path.insert(0, _StandInModules())
__getattr__ = _module_getattr
