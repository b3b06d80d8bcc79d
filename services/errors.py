"""Errors the services raise; each message is readable as a toast.

ServiceError
    SessionError    the anonymous identity could not be created or restored
    RequestError    a REST call was refused or the API could not be reached
"""


class ServiceError(Exception):
    """Base class for errors the UI shows to the user."""


class SessionError(ServiceError):
    """The anonymous identity could not be created or restored."""


class RequestError(ServiceError):
    """A REST call was refused or the API could not be reached."""
