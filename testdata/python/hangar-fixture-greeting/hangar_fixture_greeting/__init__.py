"""A tiny package for Hangar's tests: installed from a local index."""

__version__ = "1.0.0"


def greet(name):
    return "Hello, " + name + "!"
