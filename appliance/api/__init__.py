"""Local control API: the only door into the running engine."""

from appliance.api.apifile import ApiEndpoint, new_token, read_api_file, write_api_file
from appliance.api.client import ControlApiClient
from appliance.api.facade import ApiError, ApiUnavailable, EngineFacade
from appliance.api.server import ControlApiServer

__all__ = [
    "ApiEndpoint",
    "ApiError",
    "ApiUnavailable",
    "ControlApiClient",
    "ControlApiServer",
    "EngineFacade",
    "new_token",
    "read_api_file",
    "write_api_file",
]
