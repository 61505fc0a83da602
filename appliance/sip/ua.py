"""sippy's user agent, with the in-dialog requests a PBX must own itself.

Stock sippy turns an incoming REFER into a redirect-style disconnect and leaves NOTIFY
unanswered; a PBX has to keep the call and run the transfer, so REFER and NOTIFY get
their own handlers in the Connected state (RFC 3515, RFC 6665).
"""
from __future__ import annotations

from collections.abc import Callable

from sippy.SipRequest import SipRequest
from sippy.UA import UA
from sippy.UaStateConnected import UaStateConnected


class PlateauConnected(UaStateConnected):
    """Connected dialog state where REFER becomes a transfer request, not a hang-up."""

    def _recvRequestRefer(self, req: SipRequest) -> None:
        ua: PlateauUA = self.ua  # type: ignore[assignment]
        if req.countHFs("refer-to") != 1:
            # RFC 3515 §2.4.1: exactly one Refer-To, else 400.
            req.sendResponse(400, "Bad Request (one Refer-To required)")
            return
        if ua.on_refer is None:
            req.sendResponse(603, "Decline")
            return
        refer_to = req.getHFBody("refer-to")
        req.sendResponse(202, "Accepted")
        ua.on_refer(str(refer_to.getUrl()))
        return

    def _recvRequestNotify(self, req: SipRequest) -> None:
        req.sendResponse(200, "OK")

    def _recvRequestUnsupported(self, req: SipRequest) -> None:
        req.sendResponse(501, "Not Implemented")

    recv_request_handlers = dict(  # noqa: RUF012 - sippy looks handlers up on the class
        UaStateConnected.recv_request_handlers,
        REFER=_recvRequestRefer,
        NOTIFY=_recvRequestNotify,
        MESSAGE=_recvRequestUnsupported,
        UPDATE=_recvRequestUnsupported,
        SUBSCRIBE=_recvRequestUnsupported,
    )


class PlateauUA(UA):
    """A sippy UA whose Connected state hands REFERs to `on_refer`."""

    UaStateConnected = PlateauConnected
    on_refer: Callable[[str], None] | None = None
