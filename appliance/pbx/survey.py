"""The post-call survey: after the agent hangs up, the caller rates the call on the keypad.

Three questions by default, the industry's usual three: CSAT (satisfaction, 1-5), NPS (would
recommend, 0-10, so two keys and '#') and CES (customer effort, 1-7). An answer that is out of
range or missing gets the question asked once more, then the question is skipped (None).
A caller hanging up mid-survey keeps the answers already given: `on_done` is called exactly
once, from the end of the survey or from `stop()`.

A `CallService` built on `Prompter`, so it works on any answered channel (SIP, analog, ISDN)
through the media engine and the channel's typed events. `PostCallSurvey` is the service the
PBX holds: it builds the sessions from its explicit ports and stores their answers.
"""
from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from appliance.ivr.tts import PromptCache
from appliance.media.protocol import MediaError
from appliance.pbx.call import Call
from appliance.pbx.channel import Channel, DtmfReceived, PlaybackEnded
from appliance.pbx.events import SurveyDue
from appliance.pbx.ports import MediaPort, Scheduler
from appliance.pbx.prompter import Prompter
from appliance.store import interactions
from appliance.store.db import Store

log = logging.getLogger("plateau.pbx")

ANSWER_TIMEOUT_S = 6.0  # after a question, and between the two keys of an NPS answer
INTRO_TEXT = "Please stay on the line for a short survey."
RETRY_TEXT = "Sorry, that is not a valid answer."
GOODBYE_TEXT = "Thank you. Goodbye."
MAX_TRIES = 2  # asked, then asked once more


@dataclass(frozen=True)
class SurveyQuestion:
    """One question: the `SurveyAnswers` field it fills, what is said, and the accepted range."""

    field: str  # "csat", "nps" or "ces"
    text: str
    low: int
    high: int
    timeout: float = ANSWER_TIMEOUT_S

    @property
    def max_digits(self) -> int:
        return len(str(self.high))

    def parse(self, digits: str) -> int | None:
        """The answer the keys give, or None if they are not a number in range."""
        if not digits or not digits.isdigit() or len(digits) > self.max_digits:
            return None
        value = int(digits)
        return value if self.low <= value <= self.high else None


DEFAULT_QUESTIONS: tuple[SurveyQuestion, ...] = (
    SurveyQuestion("csat", "How satisfied were you with the agent who took your call? "
                           "Press a key from 1 to 5, where 5 means very satisfied.", 1, 5),
    SurveyQuestion("nps", "How likely are you to recommend us to a friend or colleague, from 0 to 10? "
                          "Please press hash after your answer.", 0, 10),
    SurveyQuestion("ces", "How easy was it to get your request handled today? "
                          "Press a key from 1 to 7, where 7 means very easy.", 1, 7),
)


@dataclass
class SurveyAnswers:
    """The caller's answers; None where the question was skipped or never reached."""

    csat: int | None = None
    nps: int | None = None
    ces: int | None = None


class SurveyState(enum.Enum):
    IDLE = "idle"
    INTRO = "intro"
    QUESTION = "question"  # a question is playing or its answer is awaited
    GOODBYE = "goodbye"
    DONE = "done"


class SurveySession:
    """One caller answering the survey; ends with `on_done(answers)`, exactly once.

    The owner hangs the channel up after `on_done` (or tells the session the caller left with `stop()`).
    """

    def __init__(self, chan: Channel, media: MediaPort, schedule: Scheduler, prompts: PromptCache,
                 on_done: Callable[[SurveyAnswers], None],
                 questions: Sequence[SurveyQuestion] = DEFAULT_QUESTIONS) -> None:
        for q in questions:
            if q.field not in ("csat", "nps", "ces"):
                raise ValueError(f"survey question field {q.field!r} is not csat, nps or ces")
        self.chan = chan
        self.media = media
        self.on_done = on_done
        self.questions = tuple(questions)
        self.prompter = Prompter(chan, media, schedule, prompts)
        self.answers = SurveyAnswers()
        self.state = SurveyState.IDLE
        self.index = 0  # the question being asked
        self.tries = 0  # how many times it has been asked

    def start(self) -> None:
        """Play the introduction, then the first question."""
        if self.state != SurveyState.IDLE:
            raise RuntimeError(f"{self.chan.id}: survey already started ({self.state.value})")
        self.state = SurveyState.INTRO
        self.prompter.say(INTRO_TEXT, lambda: self._ask(0, first=True))

    def handle(self, event: DtmfReceived | PlaybackEnded) -> None:
        """Feed the caller's keys and prompt ends here."""
        if self.state == SurveyState.INTRO and isinstance(event, DtmfReceived):
            # A caller who knows the survey answers during the introduction: skip it, the key
            # is the first answer.
            self.media.stop_play(self.chan.media_leg)
            self._ask(0, first=True)
        if self.state != SurveyState.DONE:
            self.prompter.handle(event)

    def stop(self) -> None:
        """The caller hung up (or the PBX took the channel back): report what was answered so far."""
        if self.state == SurveyState.DONE:
            return
        try:
            self.prompter.stop()
        except MediaError as exc:  # the leg may already be gone with the caller
            log.debug("%s: survey stop: %s", self.chan.id, exc)
        self._done()

    # -- transitions -------------------------------------------------------------------------------
    def _ask(self, index: int, first: bool) -> None:
        if self.state == SurveyState.DONE:
            return
        if index >= len(self.questions):
            self.state = SurveyState.GOODBYE
            self.prompter.say(GOODBYE_TEXT, self._done)
            return
        self.state = SurveyState.QUESTION
        self.index, self.tries = index, 1 if first else self.tries + 1
        q = self.questions[index]
        text = q.text if first else f"{RETRY_TEXT} {q.text}"
        self.prompter.ask(text, q.max_digits, self._answered, timeout=q.timeout)

    def _answered(self, digits: str) -> None:
        if self.state != SurveyState.QUESTION:
            return
        q = self.questions[self.index]
        value = q.parse(digits)
        if value is not None:
            setattr(self.answers, q.field, value)
            self._ask(self.index + 1, first=True)
        elif self.tries < MAX_TRIES:
            log.info("%s: survey %s: %r is not %d-%d, asking again", self.chan.id, q.field, digits, q.low, q.high)
            self._ask(self.index, first=False)
        else:
            log.info("%s: survey %s skipped", self.chan.id, q.field)
            self._ask(self.index + 1, first=True)

    def _done(self) -> None:
        if self.state == SurveyState.DONE:
            return
        self.state = SurveyState.DONE
        self.on_done(dataclasses.replace(self.answers))


# -- the service ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SurveySubject:
    """Whose call the answers are about: what they are stored with (store/interactions.py)."""

    call_id: str  # the PBX call, for the log
    call_key: str  # the caller's dialog key (SIP Call-ID), the survey row's call_id
    queue: str
    agent_id: str
    interaction_id: int | None = None


class PostCallSurvey:
    """The post-call survey as a service with explicit inputs (never the switchboard).

    `session(chan, subject, hang_up)` builds the caller's `SurveySession`; its answers are stored
    with the call and its interaction, then `hang_up()` ends the call unless the caller already
    left. The owner routes the channel's events to the session, then calls its `start()`.
    """

    def __init__(self, media: MediaPort, schedule: Scheduler, prompts: PromptCache, store: Store,
                 clock: Callable[[], float] = time.time) -> None:
        self.media = media
        self.schedule = schedule
        self.prompts = prompts
        self.store = store
        self.clock = clock

    def session(self, chan: Channel, subject: SurveySubject, hang_up: Callable[[], None]) -> SurveySession:
        """CSAT / NPS / CES by DTMF for the caller on `chan` (answered, agent gone)."""

        def done(answers: SurveyAnswers) -> None:
            interactions.record_survey(self.store, subject.call_key, subject.queue, subject.agent_id, answers.csat,
                                       answers.nps, answers.ces, self.clock(), interaction_id=subject.interaction_id)
            log.info("%s: survey %s", subject.call_id, answers)
            if not chan.is_down:
                hang_up()

        return SurveySession(chan, self.media, self.schedule, self.prompts, done)


class SurveyAfterAgent:
    """Runs the survey when a call says one is due (`SurveyDue` on the bus): the caller's keys go
    to the survey session, which hangs the call up once the answers are stored."""

    def __init__(self, surveys: PostCallSurvey, calls: Mapping[str, Call]) -> None:
        self.surveys = surveys
        self.calls = calls

    def due(self, event: SurveyDue) -> None:
        call = self.calls.get(event.call_id)
        if call is None:
            return
        subject = SurveySubject(call.id, call.a.dialog_key(), event.queue, event.agent_id, call.interaction_id)
        session = self.surveys.session(call.a, subject, lambda: call.hangup(call.a))
        call.attach_service(session)
        session.start()
