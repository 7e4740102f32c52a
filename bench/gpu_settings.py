"""Settings for running the generation worker on a bare GPU machine (bench/gpu_full_size.py's worker part).

The project's settings without `daphne`: the worker serves no HTTP, and daphne's Twisted stack is the one
part of the web server that such a machine would otherwise need carried in.
"""

from config.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "daphne"]  # noqa: F405
