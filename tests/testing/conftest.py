"""The plugin's tests run users' test files in temporary projects with pytest's own ``pytester``."""

pytest_plugins = ["pytester"]
