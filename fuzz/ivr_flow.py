"""IVR flow documents (YAML or JSON): appliance.ivr.flow.load_flow, as the flow editor and the
flows directory feed it.

Contract: ``load_flow`` raises only FlowError (listing every problem); nothing else, for any text.
"""

from __future__ import annotations

from fuzz.harness import Target, instrumented, main, text

with instrumented():
    from appliance.ivr import flow


def one_input(data: bytes) -> None:
    flow.load_flow(text(data))


TARGET = Target("ivr_flow", __doc__ or "", one_input, (flow.FlowError,))

if __name__ == "__main__":
    main(TARGET)
