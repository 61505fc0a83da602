"""Real test peers (pjsua2, baresip, SIPp) driven from tests."""
