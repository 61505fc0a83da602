/* fsk.c - caller-ID FSK modem and MDMF messages (ETSI EN 300 659-1/-3, GR-30). */
#include "fsk.h"
#include "g711.h"
#include <math.h>
#include <string.h>

#define PI_F 3.14159265358979f
#define FSK_TAIL_BITS 4          /* mark after the checksum so its stop bit ends cleanly */

static int put_param(uint8_t *out, uint8_t type, const char *s, int len, int limit)
{
    if (len > limit)
        len = limit;
    out[0] = type;
    out[1] = (uint8_t)len;
    memcpy(out + 2, s, (size_t)len);
    return 2 + len;
}

int cid_build_mdmf(const char *number, int nlen, const char *name, int namelen, uint8_t *out)
{
    int n = 2;
    if (nlen > 0)
        n += put_param(out + n, MDMF_PARAM_NUMBER, number, nlen, CID_MAX_NUMBER);
    if (namelen > 0)
        n += put_param(out + n, MDMF_PARAM_NAME, name, namelen, CID_MAX_NAME);
    out[0] = MDMF_CALL_SETUP;
    out[1] = (uint8_t)(n - 2);
    /* EN 300 659-3 5.2: checksum is the two's complement of the modulo-256
     * sum of every byte from the message type to the last parameter byte. */
    uint8_t sum = 0;
    for (int i = 0; i < n; i++)
        sum = (uint8_t)(sum + out[i]);
    out[n] = (uint8_t)(0x100 - sum);
    return n + 1;
}

bool cid_parse_mdmf(const uint8_t *msg, int n, cid_t *cid)
{
    memset(cid, 0, sizeof *cid);
    if (n < 3 || msg[0] != MDMF_CALL_SETUP || msg[1] + 3 != n)
        return false;
    uint8_t sum = 0;
    for (int i = 0; i < n; i++)
        sum = (uint8_t)(sum + msg[i]);
    if (sum != 0)
        return false;
    for (int i = 2; i < n - 1;) {
        if (i + 2 > n - 1 || i + 2 + msg[i + 1] > n - 1)
            return false;
        uint8_t type = msg[i], len = msg[i + 1];
        const uint8_t *v = msg + i + 2;
        if (type == MDMF_PARAM_NUMBER && len <= CID_MAX_NUMBER)
            memcpy(cid->number, v, len);
        else if (type == MDMF_PARAM_NAME && len <= CID_MAX_NAME)
            memcpy(cid->name, v, len);
        i += 2 + len;            /* other parameters (date, reason...) skipped */
    }
    return true;
}

void fsk_mod_start(fsk_mod_t *m, enum fsk_std std, const uint8_t *msg, int len, float dbm0)
{
    memset(m, 0, sizeof *m);
    if (len > CID_MSG_MAX)
        len = CID_MSG_MAX;
    memcpy(m->msg, msg, (size_t)len);
    m->len = len;
    m->bit_count = FSK_SEIZURE_BITS + FSK_MARK_BITS + (uint32_t)len * 10 + FSK_TAIL_BITS;
    m->mark_hz = std == FSK_V23 ? 1300.0f : 1200.0f;
    m->space_hz = std == FSK_V23 ? 2100.0f : 2200.0f;
    m->amplitude = DBM0_AMPLITUDE * powf(10.0f, dbm0 / 20.0f);
}

bool fsk_mod_busy(const fsk_mod_t *m)
{
    return (uint64_t)m->sample * 3 / 20 < m->bit_count;
}

uint32_t fsk_mod_duration_ms(const fsk_mod_t *m)
{
    return (m->bit_count * 1000 + 1199) / 1200;
}

static int fsk_bit(const fsk_mod_t *m, uint32_t k)
{
    if (k < FSK_SEIZURE_BITS)
        return (int)(k & 1);     /* 0101...: channel seizure */
    k -= FSK_SEIZURE_BITS;
    if (k < FSK_MARK_BITS)
        return 1;
    k -= FSK_MARK_BITS;
    uint32_t j = k / 10, p = k % 10;
    if (j >= (uint32_t)m->len || p == 9)
        return 1;                /* stop bit / tail */
    if (p == 0)
        return 0;                /* start bit */
    return (m->msg[j] >> (p - 1)) & 1;
}

void fsk_mod_fill(fsk_mod_t *m, int16_t *out, int n)
{
    for (int i = 0; i < n; i++) {
        uint32_t k = (uint32_t)((uint64_t)m->sample * 3 / 20);   /* 1200/8000 */
        if (k >= m->bit_count) {
            out[i] = 0;
            continue;
        }
        float f = fsk_bit(m, k) ? m->mark_hz : m->space_hz;
        m->phase += 2.0f * PI_F * f / 8000.0f;
        if (m->phase > 2.0f * PI_F)
            m->phase -= 2.0f * PI_F;
        out[i] = (int16_t)lrintf(m->amplitude * sinf(m->phase));
        m->sample++;
    }
}

void fsk_demod_init(fsk_demod_t *d, enum fsk_std std)
{
    memset(d, 0, sizeof *d);
    float fm = std == FSK_V23 ? 1300.0f : 1200.0f;
    float fs = std == FSK_V23 ? 2100.0f : 2200.0f;
    d->win_len = std == FSK_V23 ? FSK_WIN_V23 : FSK_WIN_BELL;
    for (int k = 0; k < d->win_len; k++) {
        d->cm[k] = cosf(2.0f * PI_F * fm * (float)k / 8000.0f);
        d->sm[k] = sinf(2.0f * PI_F * fm * (float)k / 8000.0f);
        d->cs[k] = cosf(2.0f * PI_F * fs * (float)k / 8000.0f);
        d->ss[k] = sinf(2.0f * PI_F * fs * (float)k / 8000.0f);
    }
}

/* One sample of the UART; returns 1 and sets *byte when a byte completes. */
static int uart_step(fsk_demod_t *d, bool carrier, bool mark, uint8_t *byte)
{
    if (!carrier) {
        d->in_byte = 0;
        d->mark_run = 0;
        return 0;
    }
    if (d->in_byte == 0) {
        if (mark) {
            d->mark_run++;
        } else if (d->mark_run >= 2) {       /* mark -> space: a start edge */
            d->in_byte = 1;
            d->bit = 0;
            d->value = 0;
            d->mark_run = 0;
        } else {
            d->mark_run = 0;
        }
        return 0;
    }
    int s = d->in_byte++;                    /* samples since the edge */
    /* Centre of bit b is (b + 0.5) * 8000/1200 samples after the edge. */
    if (s * 3 < (2 * d->bit + 1) * 10)
        return 0;
    if (d->bit == 0) {
        if (mark) {                          /* glitch, not a start bit */
            d->in_byte = 0;
            d->mark_run = 1;
        } else {
            d->bit = 1;
        }
        return 0;
    }
    if (d->bit <= 8) {
        if (mark)
            d->value |= (uint8_t)(1u << (d->bit - 1));
        d->bit++;
        return 0;
    }
    d->in_byte = 0;                          /* stop bit */
    /* The stop bit is sampled late in the bit (window delay), so a start
     * bit may follow at once: count the stop bit as enough idle mark. */
    d->mark_run = mark ? 2 : 0;
    if (!mark)
        return 0;                            /* framing error */
    *byte = d->value;
    return 1;
}

int fsk_demod_process(fsk_demod_t *d, const int16_t *x, int n, uint8_t *out, int max)
{
    /* Carrier present above -40 dBm0 (EN 300 659-1 receivers: -40 dBV range). */
    const float a = DBM0_AMPLITUDE * 0.01f;
    const float min_e = a * a / 2.0f * (float)d->win_len;
    int count = 0;
    for (int i = 0; i < n; i++) {
        d->win[d->pos] = (float)x[i];
        d->pos = (d->pos + 1) % d->win_len;
        if (d->filled < d->win_len) {
            d->filled++;
            continue;
        }
        float im = 0, qm = 0, is = 0, qs = 0, e = 0;
        for (int k = 0; k < d->win_len; k++) {
            float v = d->win[(d->pos + k) % d->win_len];
            im += v * d->cm[k];
            qm += v * d->sm[k];
            is += v * d->cs[k];
            qs += v * d->ss[k];
            e += v * v;
        }
        /* Discriminator averaged over 3 samples: less noise per decision. */
        d->disc[2] = d->disc[1];
        d->disc[1] = d->disc[0];
        d->disc[0] = (im * im + qm * qm - is * is - qs * qs) / (e + 1.0f);
        uint8_t byte;
        if (uart_step(d, e >= min_e, d->disc[0] + d->disc[1] + d->disc[2] > 0.0f, &byte) && count < max)
            out[count++] = byte;
    }
    return count;
}

bool fsk_demod_cid(fsk_demod_t *d, const int16_t *x, int n, cid_t *cid)
{
    uint8_t bytes[64];
    bool found = false;
    while (n > 0) {
        int chunk = n > 320 ? 320 : n;   /* at most 48 bytes per 320 samples */
        int got = fsk_demod_process(d, x, chunk, bytes, (int)sizeof bytes);
        x += chunk;
        n -= chunk;
        for (int i = 0; i < got; i++) {
            uint8_t b = bytes[i];
            if (d->msg_len == 0 && b != MDMF_CALL_SETUP)
                continue;                /* seizure 0x55s and noise */
            if (d->msg_len == 1 && b + 3 > CID_MSG_MAX) {
                d->msg_len = 0;
                continue;
            }
            d->msg[d->msg_len++] = b;
            if (d->msg_len >= 2 && d->msg_len == d->msg[1] + 3) {
                cid_t got_cid;
                if (cid_parse_mdmf(d->msg, d->msg_len, &got_cid)) {
                    *cid = got_cid;
                    found = true;
                }
                d->msg_len = 0;
            }
        }
    }
    return found;
}
