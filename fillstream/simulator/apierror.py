"""Binance's error answers: HTTP status plus ``{"code": …, "msg": …}``."""

from __future__ import annotations


class ApiError(Exception):
    """Raised by a REST handler; the dispatcher turns it into Binance's error body."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"HTTP {status} {code}: {msg}")
        self.status = status
        self.code = code
        self.msg = msg


def mandatory(name: str) -> ApiError:
    return ApiError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def bad_param(name: str) -> ApiError:
    return ApiError(400, -1130, f"Data sent for parameter '{name}' is not valid.")


def combination() -> ApiError:
    return ApiError(400, -1128, "Combination of optional parameters invalid.")


def no_such_order() -> ApiError:
    return ApiError(400, -2013, "Order does not exist.")


def invalid_symbol() -> ApiError:
    return ApiError(400, -1121, "Invalid symbol.")


LISTEN_KEY_GONE = ApiError(400, -1125, "This listenKey does not exist.")
BAD_SIGNATURE = ApiError(400, -1022, "Signature for this request is not valid.")
KEY_FORMAT = ApiError(401, -2014, "API-key format invalid.")
BAD_KEY = ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
OUTSIDE_WINDOW = ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
AHEAD = ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
BAD_RECV_WINDOW = ApiError(400, -1131, "recvWindow must be less than 60000")
