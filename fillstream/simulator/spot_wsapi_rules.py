"""The WS API's request rules that are not about connections: parameter parsing, the
signature payload, Binance's limit and refusal messages, and the request faults
(``refuse_subscribe``, ``ws_api_rate_limit``)."""

from __future__ import annotations

from urllib.parse import urlencode

from fillstream.simulator.apierror import ApiError

TOO_MUCH = (
    "Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)
BANNED = (
    "Way too much request weight used; IP banned until {until}. "
    "Please use WebSocket Streams for live updates to avoid bans."
)


# What a ``refuse_subscribe`` fault answers, by the code it is given.
REFUSALS: dict[int, tuple[int, str]] = {
    -2015: (401, "Invalid API-key, IP, or permissions for action."),
    -2014: (401, "API-key format invalid."),
    -1022: (400, "Signature for this request is not valid."),
    -1001: (503, "Internal error; unable to process your request. Please try again."),
    -1007: (503, "Timeout waiting for response from backend server. Send status unknown; "
                 "execution status unknown."),
    -1003: (429, TOO_MUCH.format(limit=6000)),
}  # fmt: skip


class SpotWsFaults:
    """WS API faults that act on requests, per account (``None``: any account)."""

    def __init__(self) -> None:
        self.refuse: dict[str, tuple[int, int]] = {}  # account -> (subscribes left, code)
        self.rate_limited: dict[str | None, tuple[int, float]] = {}  # -> (left, retry after s)

    def take_refusal(self, account: str) -> int | None:
        left, code = self.refuse.get(account, (0, 0))
        if left <= 0:
            return None
        if left == 1:
            del self.refuse[account]
        else:
            self.refuse[account] = (left - 1, code)
        return code

    def take_rate_limit(self, accounts: list[str]) -> float | None:
        for who in (*accounts, None):
            left, retry = self.rate_limited.get(who, (0, 0.0))
            if left > 0:
                if left == 1:
                    del self.rate_limited[who]
                else:
                    self.rate_limited[who] = (left - 1, retry)
                return retry
        return None


def number(value: object, name: str) -> int:
    """An integer parameter (JSON number or numeric string); ``-1100`` otherwise."""
    if isinstance(value, bool):
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")


def window(value: object) -> float:
    """``recvWindow``: milliseconds, up to three decimals (microseconds) allowed."""
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return number(value, "recvWindow")


def text(value: object) -> str:
    """A parameter as it appears in the signature payload."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def signature_payloads(params: dict[str, object]) -> set[str]:
    """What a signature may cover: every parameter but ``signature``, sorted by name, as
    ``k=v&...`` (the docs' form) or percent-encoded (python-binance's ``urlencode``); the two
    differ only for values that need encoding."""
    signed = sorted((k, text(v)) for k, v in params.items() if k != "signature")
    return {"&".join(f"{k}={v}" for k, v in signed), urlencode(signed)}
