"""Helpers shared by the test modules (no test module imports another): the lake, the function
callers, checks and the reliability recorder."""


