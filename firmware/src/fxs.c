/* fxs.c - FXS port state machine: hook debounce, flash/hang-up timing, ring
 * cadences and on-hook caller ID (timing rules of hw/PROTOCOL.md). */
#include "fxs.h"
#include "hal.h"
#include <string.h>

/* Cadences in ms, ring-on first: FR 1.5/3.5; UK (BT SIN 350) 0.4/0.2/0.4/2.0;
 * US (GR-506) 2/4. */
static const uint16_t CAD_FR[] = {1500, 3500};
static const uint16_t CAD_UK[] = {400, 200, 400, 2000};
static const uint16_t CAD_US[] = {2000, 4000};
static const struct { const uint16_t *seg; uint8_t n; } CADENCES[CADENCE_COUNT] = {
    {CAD_FR, 2}, {CAD_UK, 4}, {CAD_US, 2}};
/* FSK goes in the first silence long enough for it: the "long" off segment
 * (the 0.2 s gap inside the UK double ring is not one). */
#define LONG_SILENCE_MS 1000

static bool reached(uint32_t now, uint32_t t)
{
    return (int32_t)(now - t) >= 0;
}

static void set_ring(fxs_t *f, bool on)
{
    if (f->ring_on != on) {
        f->ring_on = on;
        hal_slic_ring(f->port, on);
    }
}

static void stop_ringing(fxs_t *f)
{
    set_ring(f, false);
    f->fsk_active = false;
    f->clip.count = f->clip.index = 0;
}

void fxs_init(fxs_t *f, uint8_t port, uint32_t now)
{
    memset(f, 0, sizeof *f);
    f->port = port;
    f->state = FXS_IDLE;
    debounce_init(&f->hook, false, now, FXS_DEBOUNCE_MS);
    hal_slic_ring(port, false);
}

uint8_t fxs_status(const fxs_t *f)
{
    switch (f->state) {
    case FXS_RINGING:
        return 2;
    case FXS_OFFHOOK:
    case FXS_HOOK_PENDING:       /* not hung up until 800 ms have passed */
        return 1;
    default:
        return 0;
    }
}

static void on_offhook(fxs_t *f, evq_t *q)
{
    uint32_t d;
    switch (f->state) {
    case FXS_RINGING:
        stop_ringing(f);         /* the phone answered: ring trip */
        /* fall through */
    case FXS_IDLE:
        f->state = FXS_OFFHOOK;
        evq_post(q, FT_EV_OFF_HOOK, f->port, NULL, 0);
        break;
    case FXS_HOOK_PENDING:
        d = f->hook.raw_since - f->onhook_at;
        f->state = FXS_OFFHOOK;
        if (d > FXS_FLASH_MAX_MS) {           /* hung up, then lifted again */
            evq_post(q, FT_EV_ON_HOOK, f->port, NULL, 0);
            evq_post(q, FT_EV_OFF_HOOK, f->port, NULL, 0);
        } else if (d >= FXS_FLASH_MIN_MS) {
            evq_post(q, FT_EV_FLASH, f->port, NULL, 0);
        }                                     /* under 80 ms: a glitch */
        break;
    default:
        break;
    }
}

static void run_cadence(fxs_t *f, uint32_t now)
{
    const uint16_t *seg = CADENCES[f->cadence].seg;
    uint8_t nseg = CADENCES[f->cadence].n;
    if (!f->cadence_started) {
        if (!reached(now, f->seg_start))
            return;                            /* DTMF CLIP still on the line */
        f->cadence_started = true;
        f->seg = 0;
        set_ring(f, true);
    }
    while ((uint32_t)(now - f->seg_start) >= seg[f->seg]) {
        f->seg_start += seg[f->seg];
        f->seg = (uint8_t)((f->seg + 1) % nseg);
        set_ring(f, (f->seg & 1) == 0);
        if (!f->cid_sent && (f->seg & 1) && seg[f->seg] >= LONG_SILENCE_MS &&
            (f->cid_mode == CID_FSK_V23 || f->cid_mode == CID_FSK_BELL)) {
            /* EN 300 659-1 / GR-30: data in the first silence after the first
             * ring burst, starting 500 ms after it. */
            uint8_t msg[CID_MSG_MAX];
            int len = cid_build_mdmf(f->cid.number, (int)strlen(f->cid.number), f->cid.name,
                                     (int)strlen(f->cid.name), msg);
            fsk_mod_start(&f->fsk, f->cid_mode == CID_FSK_V23 ? FSK_V23 : FSK_BELL202, msg, len,
                          -13.0f);
            f->fsk_at = f->seg_start + FXS_CID_DELAY_MS;
            f->fsk_active = true;
            f->cid_sent = true;
        }
    }
}

void fxs_poll(fxs_t *f, uint32_t now, evq_t *q)
{
    if (debounce_update(&f->hook, hal_slic_offhook(f->port), now)) {
        if (f->hook.stable) {
            on_offhook(f, q);
        } else if (f->state == FXS_OFFHOOK) {
            f->state = FXS_HOOK_PENDING;
            f->onhook_at = f->hook.raw_since;
        }
    }
    /* Hang-up: on-hook for more than 800 ms, unless an off-hook is being
     * debounced (it may still turn out to be a flash ending at 800 ms). */
    if (f->state == FXS_HOOK_PENDING && !f->hook.raw &&
        (uint32_t)(now - f->onhook_at) > FXS_FLASH_MAX_MS) {
        f->state = FXS_IDLE;
        evq_post(q, FT_EV_ON_HOOK, f->port, NULL, 0);
    }
    if (f->state == FXS_RINGING) {
        if ((uint32_t)(now - f->ring_start) >= FXS_RING_TIMEOUT_MS) {
            stop_ringing(f);
            f->state = FXS_IDLE;
        } else {
            run_cadence(f, now);
        }
    }
}

enum cmd_status fxs_ring(fxs_t *f, uint32_t now, uint8_t cadence, uint8_t cid_mode,
                         const char *number, int nlen, const char *name, int namelen)
{
    if (cadence >= CADENCE_COUNT || cid_mode >= CID_MODE_COUNT || nlen < 0 || namelen < 0)
        return CMD_BAD_ARG;
    if (f->state == FXS_RINGING)
        return CMD_OK;           /* a repeated RING (lost ACK) changes nothing */
    if (f->state != FXS_IDLE)
        return CMD_BAD_STATE;
    memset(&f->cid, 0, sizeof f->cid);
    memcpy(f->cid.number, number, (size_t)(nlen > CID_MAX_NUMBER ? CID_MAX_NUMBER : nlen));
    memcpy(f->cid.name, name, (size_t)(namelen > CID_MAX_NAME ? CID_MAX_NAME : namelen));
    f->state = FXS_RINGING;
    f->cadence = cadence;
    f->cid_mode = cid_mode;
    f->cid_sent = false;
    f->fsk_active = false;
    f->ring_start = now;
    f->seg = 0;
    f->seg_start = now;
    f->cadence_started = false;
    if (cid_mode == CID_DTMF && nlen > 0) {
        /* DTMF CLIP (EN 300 659-1 annex B): 'A' number 'C' before the first ring. */
        char clip[CID_MAX_NUMBER + 2];
        int n = (int)strlen(f->cid.number);
        clip[0] = 'A';
        memcpy(clip + 1, f->cid.number, (size_t)n);
        clip[n + 1] = 'C';
        dtmf_gen_start(&f->clip, clip, n + 2, 100, 100, -10.0f);
        f->seg_start = now + (uint32_t)f->clip.count * 200u + FXS_CLIP_GAP_MS;
        f->cid_sent = true;
    }
    run_cadence(f, now);
    return CMD_OK;
}

enum cmd_status fxs_stop_ring(fxs_t *f)
{
    if (f->state == FXS_RINGING) {
        stop_ringing(f);
        f->state = FXS_IDLE;
    }
    return CMD_OK;
}

bool fxs_audio(fxs_t *f, uint32_t now, int16_t *out, int n)
{
    if (f->state != FXS_RINGING)
        return false;
    if (dtmf_gen_busy(&f->clip)) {
        dtmf_gen_fill(&f->clip, out, n);
        return true;
    }
    if (f->fsk_active && reached(now, f->fsk_at)) {
        fsk_mod_fill(&f->fsk, out, n);
        if (!fsk_mod_busy(&f->fsk))
            f->fsk_active = false;
        return true;
    }
    return false;
}
