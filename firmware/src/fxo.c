/* fxo.c - FXO port state machine (hw/PROTOCOL.md: RING_START, RING_STOP after
 * 6 s, CALLER_ID from FSK or DTMF CLIP, POLARITY, seizure, DIAL and
 * BUSY_TONE). */
#include "fxo.h"
#include "hal.h"
#include <string.h>

void fxo_init(fxo_t *f, uint8_t port, uint32_t now)
{
    memset(f, 0, sizeof *f);
    f->port = port;
    f->state = FXO_IDLE;
    debounce_init(&f->ring, false, now, FXO_RING_DEBOUNCE_MS);
    debounce_init(&f->polarity, hal_daa_polarity(port), now, FXO_POLARITY_DEBOUNCE_MS);
    fsk_demod_init(&f->v23, FSK_V23);
    fsk_demod_init(&f->bell, FSK_BELL202);
    hal_daa_offhook(port, false);
}

void post_caller_id(evq_t *q, uint8_t port, const char *number, const char *name)
{
    uint8_t p[EVENT_MAX_DATA];
    size_t nl = strlen(number), ml = strlen(name);
    if (nl > CID_MAX_NUMBER)
        nl = CID_MAX_NUMBER;
    if (ml > CID_MAX_NAME)
        ml = CID_MAX_NAME;
    p[0] = (uint8_t)nl;
    memcpy(p + 1, number, nl);
    p[1 + nl] = (uint8_t)ml;
    memcpy(p + 2 + nl, name, ml);
    evq_post(q, FT_EV_CALLER_ID, port, p, (uint8_t)(2 + nl + ml));
}

static void clip_finish(fxo_t *f, evq_t *q)
{
    f->clip[f->clip_len] = 0;
    if (f->clip_len > 0)
        post_caller_id(q, f->port, f->clip, "");
    f->clip_active = false;
    f->clip_len = 0;
}

void fxo_poll(fxo_t *f, uint32_t now, evq_t *q)
{
    if (debounce_update(&f->polarity, hal_daa_polarity(f->port), now)) {
        uint8_t pol = f->polarity.stable ? 1 : 0;
        evq_post(q, FT_EV_POLARITY, f->port, &pol, 1);
    }
    bool ring_changed = debounce_update(&f->ring, hal_daa_ring(f->port), now);
    if (ring_changed && !f->ring.stable)
        f->last_ring_end = f->ring.raw_since;
    switch (f->state) {
    case FXO_IDLE:
        if (ring_changed && f->ring.stable) {
            f->state = FXO_RINGING;
            evq_post(q, FT_EV_RING_START, f->port, NULL, 0);
        }
        break;
    case FXO_RINGING:
        if (!f->ring.stable && !f->ring.raw &&
            (uint32_t)(now - f->last_ring_end) >= FXO_RING_STOP_MS) {
            f->state = FXO_IDLE;          /* the caller gave up */
            evq_post(q, FT_EV_RING_STOP, f->port, NULL, 0);
        }
        break;
    default:
        break;                            /* seized: ring detect ignored */
    }
    if (f->clip_active && (uint32_t)(now - f->clip_last) >= FXO_CLIP_TIMEOUT_MS)
        clip_finish(f, q);
}

enum cmd_status fxo_offhook(fxo_t *f)
{
    if (f->state != FXO_OFFHOOK) {
        f->state = FXO_OFFHOOK;
        f->clip_active = false;
        busytone_init(&f->busy);          /* the 2 s count from the seizure */
        hal_daa_offhook(f->port, true);
    }
    return CMD_OK;
}

enum cmd_status fxo_onhook(fxo_t *f, evq_t *q)
{
    if (f->state == FXO_OFFHOOK) {
        hal_daa_offhook(f->port, false);
        f->dial.count = f->dial.index = 0;
        f->state = FXO_IDLE;
        evq_post(q, FT_EV_ON_HOOK, f->port, NULL, 0);
    }
    return CMD_OK;
}

enum cmd_status fxo_dial(fxo_t *f, const char *digits, int len)
{
    float lo, hi;
    for (int i = 0; i < len; i++)
        if (!dtmf_freqs(digits[i], &lo, &hi) || (digits[i] >= 'A' && digits[i] <= 'D'))
            return CMD_BAD_ARG;       /* DIAL carries 0-9 * # only */
    if (f->state != FXO_OFFHOOK)
        return CMD_BAD_STATE;
    if (!dtmf_gen_busy(&f->dial)) {
        dtmf_gen_start(&f->dial, digits, len, 100, 100, -8.0f);
        return CMD_OK;
    }
    return dtmf_gen_append(&f->dial, digits, len) ? CMD_OK : CMD_BAD_ARG;
}

void fxo_audio_in(fxo_t *f, uint32_t now, const int16_t *x, int n, const dtmf_hit_t *hits,
                  int nhits, evq_t *q)
{
    if (f->state == FXO_OFFHOOK) {
        /* In a call: DTMF goes to the host as DTMF; a busy cadence means the
         * far end has gone (the exchange gives no other sign on many lines). */
        if (busytone_process(&f->busy, x, n))
            evq_post(q, FT_EV_BUSY_TONE, f->port, NULL, 0);
        return;
    }
    /* Both demodulators run: the sender's standard is not signalled.  A Bell
     * 202 burst may also decode as V.23, so one message gives one event. */
    cid_t a, b;
    bool got_a = fsk_demod_cid(&f->v23, x, n, &a);
    bool got_b = fsk_demod_cid(&f->bell, x, n, &b);
    if ((got_a || got_b) && (!f->fsk_cid_seen || (uint32_t)(now - f->fsk_cid_at) > FXO_CID_HOLD_MS)) {
        const cid_t *c = got_a ? &a : &b;
        post_caller_id(q, f->port, c->number, c->name);
        f->fsk_cid_seen = true;
        f->fsk_cid_at = now;
    }
    /* DTMF CLIP (EN 300 659-1 annex B): 'A' (or 'D') number ... 'C'. */
    for (int i = 0; i < nhits; i++) {
        char d = hits[i].digit;
        if (d == 'A' || d == 'D') {
            f->clip_active = true;
            f->clip_len = 0;
        } else if (f->clip_active && d == 'C') {
            clip_finish(f, q);
        } else if (f->clip_active && d >= '0' && d <= '9' && f->clip_len < CID_MAX_NUMBER) {
            f->clip[f->clip_len++] = d;
        }
        f->clip_last = now;
    }
}

bool fxo_audio_out(fxo_t *f, int16_t *out, int n)
{
    if (f->state != FXO_OFFHOOK || !dtmf_gen_busy(&f->dial))
        return false;
    dtmf_gen_fill(&f->dial, out, n);
    return true;
}
