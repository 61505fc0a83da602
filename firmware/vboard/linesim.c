/* linesim.c - simulated phone and line for the virtual board (control
 * language in firmware/README.md "Virtual board"). */
#include "linesim.h"
#include "board.h"
#include "dtmf.h"
#include "fsk.h"
#include "g711.h"
#include "host_hal.h"
#include "tonegen.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern board_t vb_board;

#define MEAS_SAMPLES 1600                /* 200 ms per frequency measurement */

typedef struct {
    /* into the codec */
    float voice_hz, voice_dbm0, voice_phase;
    dtmf_gen_t keys;
    fsk_mod_t cid;
    bool cid_on;
    /* exchange busy/congestion cadence ("busy P ..."); busy_on == 0: none */
    float busy_hz[2], busy_dbm0, busy_phase[2];
    uint32_t busy_on, busy_off, busy_sample;   /* samples */
    /* out of the codec */
    dtmf_det_t det;
    fsk_demod_t v23, bell;
    bool clip_on;
    char clip[32];
    int clip_len;
    int16_t meas[MEAS_SAMPLES];
    int meas_n;
    int heard_hz;                        /* last reported, 0 = silence */
    float last_hz, last_dbm0;
    uint32_t flash_end;                  /* 0: no flash running */
    double mark1300, mark1200;           /* energy at each standard's mark since the last silence */
    int cid_hold;                        /* frames during which a 2nd decode is the same message */
} line_t;

static line_t lines[VB_PORTS];
static bool quit_requested;

void linesim_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

void linesim_init(void)
{
    memset(lines, 0, sizeof lines);
    for (int p = 0; p < VB_PORTS; p++) {
        dtmf_det_init(&lines[p].det);
        fsk_demod_init(&lines[p].v23, FSK_V23);
        fsk_demod_init(&lines[p].bell, FSK_BELL202);
    }
}

bool linesim_quit(void)
{
    return quit_requested;
}

void linesim_capture(uint8_t port, uint32_t now, uint8_t ulaw[HAL_FRAME_SAMPLES])
{
    line_t *l = &lines[port];
    int16_t mix[HAL_FRAME_SAMPLES] = {0}, tmp[HAL_FRAME_SAMPLES];
    (void)now;
    /* An on-hook phone sends nothing; the line always can (caller ID). */
    bool live = vb.kinds[port] == HAL_PORT_FXO || vb.slic_offhook[port];
    if (live && l->voice_hz > 0.0f) {
        sine_fill(l->voice_hz, l->voice_dbm0, &l->voice_phase, tmp, HAL_FRAME_SAMPLES);
        for (int i = 0; i < HAL_FRAME_SAMPLES; i++)
            mix[i] = (int16_t)(mix[i] + tmp[i] / 2);   /* leave room for DTMF */
    }
    if (dtmf_gen_busy(&l->keys)) {
        dtmf_gen_fill(&l->keys, tmp, HAL_FRAME_SAMPLES);
        for (int i = 0; i < HAL_FRAME_SAMPLES; i++)
            mix[i] = (int16_t)(mix[i] + tmp[i]);
    }
    if (l->busy_on > 0) {
        for (int t = 0; t < 2 && l->busy_hz[t] > 0.0f; t++) {
            /* the phase runs on through the gaps, as an exchange's oscillator does */
            sine_fill(l->busy_hz[t], l->busy_dbm0, &l->busy_phase[t], tmp, HAL_FRAME_SAMPLES);
            for (int i = 0; i < HAL_FRAME_SAMPLES; i++)
                if ((l->busy_sample + (uint32_t)i) % (l->busy_on + l->busy_off) < l->busy_on)
                    mix[i] = (int16_t)(mix[i] + tmp[i]);
        }
        l->busy_sample = (l->busy_sample + HAL_FRAME_SAMPLES) % (l->busy_on + l->busy_off);
    }
    if (l->cid_on) {
        fsk_mod_fill(&l->cid, tmp, HAL_FRAME_SAMPLES);
        for (int i = 0; i < HAL_FRAME_SAMPLES; i++)
            mix[i] = (int16_t)(mix[i] + tmp[i]);
        l->cid_on = fsk_mod_busy(&l->cid);
    }
    for (int i = 0; i < HAL_FRAME_SAMPLES; i++)
        ulaw[i] = ulaw_encode(mix[i]);
}

static double goertzel(const int16_t *x, int n, double hz)
{
    double c = 2 * cos(2 * M_PI * hz / 8000), s1 = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        double s0 = x[i] + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    return s1 * s1 + s2 * s2 - c * s1 * s2;
}

/* Frequency by interpolated zero crossings, accepted only if one sine holds
 * most of the energy (so DTMF, FSK and noise are not "heard" as tones). */
static void measure(const int16_t *x, int n, float *hz, float *dbm0)
{
    double e = 0;
    for (int i = 0; i < n; i++)
        e += (double)x[i] * x[i];
    double rms = sqrt(e / n);
    *dbm0 = rms < 1.0 ? -99.0f : (float)(20.0 * log10(rms / (DBM0_AMPLITUDE / sqrt(2.0))));
    *hz = 0.0f;
    double first = -1, last = -1;
    int crossings = 0;
    for (int i = 1; i < n; i++) {
        if ((x[i - 1] < 0) != (x[i] < 0) && x[i] != x[i - 1]) {
            double t = i - 1 + (double)x[i - 1] / (double)(x[i - 1] - x[i]);
            if (first < 0)
                first = t;
            last = t;
            crossings++;
        }
    }
    if (*dbm0 < -45.0f || crossings < 3)
        return;
    double f = (crossings - 1) / 2.0 / ((last - first) / 8000.0);
    double tone = goertzel(x, n, f) * 2 / n;
    if (tone >= 0.8 * e)
        *hz = (float)f;
}

static void report_heard(uint8_t port, line_t *l)
{
    float hz, dbm0;
    measure(l->meas, MEAS_SAMPLES, &hz, &dbm0);
    l->last_hz = hz;
    l->last_dbm0 = dbm0;
    int rounded = (int)lrintf(hz);
    if (rounded == 0 && l->heard_hz != 0) {
        l->heard_hz = 0;
        linesim_report("heard %u 0", port);
    } else if (rounded != 0 && abs(rounded - l->heard_hz) > 10) {
        l->heard_hz = rounded;
        linesim_report("heard %u %d %.1f", port, rounded, dbm0);
    }
}

static void clip_digit(uint8_t port, line_t *l, char d)
{
    if (d == 'A' || d == 'D') {
        l->clip_on = true;
        l->clip_len = 0;
    } else if (l->clip_on && d == 'C') {
        l->clip[l->clip_len] = 0;
        linesim_report("cid %u dtmf %s", port, l->clip);
        l->clip_on = false;
    } else if (l->clip_on && l->clip_len < 30) {
        l->clip[l->clip_len++] = d;
    } else {
        linesim_report("dialled %u %c", port, d);
    }
}

/* Both demodulators may decode one burst (their tones are 100 Hz apart):
 * report it once, named after the mark tone (1300 Hz V.23, 1200 Hz Bell)
 * that held more energy since the line was last silent: the 150 ms of
 * mark before the message decide it. */
static void report_fsk(uint8_t port, line_t *l, const cid_t *cid)
{
    if (l->cid_hold > 0)
        return;
    linesim_report("cid %u %s %s %s", port, l->mark1300 > l->mark1200 ? "v23" : "bell", cid->number,
                   cid->name);
    l->cid_hold = 100;
}

void linesim_played(uint8_t port, const uint8_t ulaw[HAL_FRAME_SAMPLES])
{
    line_t *l = &lines[port];
    int16_t pcm[HAL_FRAME_SAMPLES];
    dtmf_hit_t hits[4];
    cid_t cid;
    for (int i = 0; i < HAL_FRAME_SAMPLES; i++)
        pcm[i] = ulaw_decode(ulaw[i]);
    int n = dtmf_det_process(&l->det, pcm, HAL_FRAME_SAMPLES, hits, 4);
    for (int i = 0; i < n; i++)
        clip_digit(port, l, hits[i].digit);
    if (l->cid_hold > 0)
        l->cid_hold--;
    double e = 0;
    for (int i = 0; i < HAL_FRAME_SAMPLES; i++)
        e += (double)pcm[i] * pcm[i];
    if (e < 1e3 * HAL_FRAME_SAMPLES) {           /* below about -50 dBm0: silence */
        l->mark1300 = l->mark1200 = 0;
    } else {
        l->mark1300 += goertzel(pcm, HAL_FRAME_SAMPLES, 1300);
        l->mark1200 += goertzel(pcm, HAL_FRAME_SAMPLES, 1200);
    }
    if (fsk_demod_cid(&l->v23, pcm, HAL_FRAME_SAMPLES, &cid))
        report_fsk(port, l, &cid);
    if (fsk_demod_cid(&l->bell, pcm, HAL_FRAME_SAMPLES, &cid))
        report_fsk(port, l, &cid);
    memcpy(l->meas + l->meas_n, pcm, sizeof pcm);
    l->meas_n += HAL_FRAME_SAMPLES;
    if (l->meas_n == MEAS_SAMPLES) {
        report_heard(port, l);
        l->meas_n = 0;
    }
}

void linesim_tick(uint32_t now)
{
    for (int p = 0; p < VB_PORTS; p++)
        if (lines[p].flash_end && (int32_t)(now - lines[p].flash_end) >= 0) {
            lines[p].flash_end = 0;
            vb.slic_offhook[p] = true;
        }
}

static bool fail(const char *why)
{
    linesim_report("error %s", why);
    return false;
}

/* Parse "P" into a port of the wanted kind (0 = any). */
static bool get_port(const char *s, uint8_t kind, int *port)
{
    char *end;
    long p = strtol(s ? s : "", &end, 10);
    if (!s || *end || p < 0 || p >= VB_PORTS)
        return fail("bad port");
    if (kind && vb.kinds[p] != kind)
        return fail(kind == HAL_PORT_FXS ? "not an FXS port" : "not an FXO port");
    *port = (int)p;
    return true;
}

/* Busy/congestion cadences of "busy P NAME" (ITU-T E.180 and the national
 * specifications: FR 440 Hz, UK 400 Hz, US 480+620 Hz). */
static const struct {
    const char *name;
    float hz[2], dbm0;
    uint16_t on_ms, off_ms;
} BUSY_CADENCES[] = {
    {"FR", {440.0f, 0.0f}, -20.0f, 500, 500},
    {"UK", {400.0f, 0.0f}, -20.0f, 375, 375},
    {"US", {480.0f, 620.0f}, -24.0f, 500, 500},
    {"congestion", {440.0f, 0.0f}, -20.0f, 250, 250},
};

static bool set_busy(line_t *l, const char *name)
{
    if (!strcmp(name, "off")) {
        l->busy_on = 0;
        return true;
    }
    for (size_t i = 0; i < sizeof BUSY_CADENCES / sizeof BUSY_CADENCES[0]; i++)
        if (!strcmp(name, BUSY_CADENCES[i].name)) {
            l->busy_hz[0] = BUSY_CADENCES[i].hz[0];
            l->busy_hz[1] = BUSY_CADENCES[i].hz[1];
            l->busy_dbm0 = BUSY_CADENCES[i].dbm0;
            l->busy_on = BUSY_CADENCES[i].on_ms * 8u;
            l->busy_off = BUSY_CADENCES[i].off_ms * 8u;
            l->busy_sample = 0;              /* the cadence starts with a burst now */
            return true;
        }
    return false;
}

static void send_cid(line_t *l, enum fsk_std std, const char *number, const char *name)
{
    uint8_t msg[CID_MSG_MAX];
    int len = cid_build_mdmf(number, (int)strlen(number), name, (int)strlen(name), msg);
    fsk_mod_start(&l->cid, std, msg, len, -13.0f);
    l->cid_on = true;
}

bool linesim_command(const char *text, uint32_t now)
{
    char line[256], *save = NULL;
    strncpy(line, text, sizeof line - 1);
    line[sizeof line - 1] = 0;
    line[strcspn(line, "\r\n")] = 0;
    char *cmd = strtok_r(line, " ", &save);
    if (!cmd)
        return true;                               /* empty line */
    char *a1 = strtok_r(NULL, " ", &save);
    char *a2 = strtok_r(NULL, " ", &save);
    char *rest = save && *save ? save : "";        /* everything after a2 */
    int p;

    if (!strcmp(cmd, "quit")) {
        quit_requested = true;
    } else if (!strcmp(cmd, "stats")) {
        frame_stats_t *s = &vb_board.rx.stats;
        linesim_report("stats frames=%u crc_errors=%u framing_errors=%u seq_gaps=%u tx_drops=%u",
                       (unsigned)s->frames, (unsigned)s->crc_errors, (unsigned)s->framing_errors,
                       (unsigned)s->seq_gaps, (unsigned)vb_board.tx_drops);
    } else if (!strcmp(cmd, "hook")) {
        if (!get_port(a1, HAL_PORT_FXS, &p))
            return false;
        if (!a2 || (strcmp(a2, "off") && strcmp(a2, "on")))
            return fail("hook P off|on");
        vb.slic_offhook[p] = !strcmp(a2, "off");
        lines[p].flash_end = 0;
    } else if (!strcmp(cmd, "flash")) {
        if (!get_port(a1, HAL_PORT_FXS, &p))
            return false;
        long ms = a2 ? strtol(a2, NULL, 10) : 300;
        if (ms <= 0 || ms > 5000)
            return fail("flash P [ms]");
        vb.slic_offhook[p] = false;
        lines[p].flash_end = now + (uint32_t)ms;
    } else if (!strcmp(cmd, "ring")) {
        if (!get_port(a1, HAL_PORT_FXO, &p))
            return false;
        if (!a2 || (strcmp(a2, "on") && strcmp(a2, "off")))
            return fail("ring P on|off");
        vb.daa_ring[p] = !strcmp(a2, "on");
    } else if (!strcmp(cmd, "cid") || !strcmp(cmd, "cidbell")) {
        if (!get_port(a1, HAL_PORT_FXO, &p))
            return false;
        if (!a2 || strspn(a2, "0123456789") != strlen(a2))
            return fail("cid P NUMBER [NAME...]");
        send_cid(&lines[p], !strcmp(cmd, "cid") ? FSK_V23 : FSK_BELL202, a2, rest);
    } else if (!strcmp(cmd, "ciddtmf")) {
        if (!get_port(a1, HAL_PORT_FXO, &p))
            return false;
        if (!a2 || strspn(a2, "0123456789") != strlen(a2) || strlen(a2) > 20)
            return fail("ciddtmf P NUMBER");
        char clip[24];
        snprintf(clip, sizeof clip, "A%sC", a2);
        dtmf_gen_start(&lines[p].keys, clip, (int)strlen(clip), 70, 70, -10.0f);
    } else if (!strcmp(cmd, "busy")) {
        if (!get_port(a1, HAL_PORT_FXO, &p))
            return false;
        if (!a2 || !set_busy(&lines[p], a2))
            return fail("busy P FR|UK|US|congestion|off");
    } else if (!strcmp(cmd, "polarity")) {
        if (!get_port(a1, HAL_PORT_FXO, &p))
            return false;
        if (a2 && strcmp(a2, "0") && strcmp(a2, "1"))
            return fail("polarity P [0|1]");
        vb.daa_pol[p] = a2 ? a2[0] == '1' : !vb.daa_pol[p];
    } else if (!strcmp(cmd, "dtmf")) {
        if (!get_port(a1, 0, &p))
            return false;
        float lo, hi;
        if (!a2 || !*a2)
            return fail("dtmf P DIGITS [on_ms [off_ms]]");
        for (const char *c = a2; *c; c++)
            if (!dtmf_freqs(*c, &lo, &hi))
                return fail("dtmf P DIGITS: 0-9 * # A-D");
        char *end;
        long on = strtol(rest, &end, 10), off = strtol(end, NULL, 10);
        on = on > 0 ? on : 100;
        off = off > 0 ? off : 100;
        if (dtmf_gen_busy(&lines[p].keys))
            dtmf_gen_append(&lines[p].keys, a2, (int)strlen(a2));
        else
            dtmf_gen_start(&lines[p].keys, a2, (int)strlen(a2), (int)on, (int)off, -10.0f);
    } else if (!strcmp(cmd, "tone")) {
        if (!get_port(a1, 0, &p))
            return false;
        char *end;
        double hz = a2 ? strtod(a2, &end) : -1;
        if (!a2 || *end || hz < 0 || hz > 3900)
            return fail("tone P FREQ [DBM0]");
        lines[p].voice_hz = (float)hz;
        lines[p].voice_dbm0 = *rest ? (float)strtod(rest, NULL) : -10.0f;
    } else if (!strcmp(cmd, "measure")) {
        if (!get_port(a1, 0, &p))
            return false;
        linesim_report("level %d %.1f %d", p, lines[p].last_dbm0, (int)lrintf(lines[p].last_hz));
    } else if (!strcmp(cmd, "alarm") || !strcmp(cmd, "line")) {
        if (!get_port(a1, 0, &p))
            return false;
        if (!a2)
            return fail("alarm P BITS | line P VALUE");
        long v = strtol(a2, NULL, 10);
        if (!strcmp(cmd, "alarm"))
            vb.alarms[p] = (uint8_t)v;
        else {
            vb.line_forced[p] = true;
            vb.line_value[p] = (int16_t)v;
        }
    } else {
        return fail("unknown command");
    }
    linesim_report("ok %s", cmd);
    return true;
}
