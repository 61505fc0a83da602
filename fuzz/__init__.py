"""Coverage-guided fuzz targets (atheris, libFuzzer underneath); one module per parsed format.

Run one with ``scripts/fuzz TARGET SECONDS``; ``tests/fuzz`` runs each briefly in CI.
"""

#: Every target module under fuzz/, named after what it parses.
TARGETS = (
    "sip_request",
    "sdp_offer",
    "rtp_packet",
    "rtcp_packet",
    "telephone_event",
    "line_frame",
    "v253_stream",
    "ivr_flow",
    "config_import",
    "prospect_csv",
    "backup_archive",
    "api_request",
)
