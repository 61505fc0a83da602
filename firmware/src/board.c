/* board.c - main loop: poll the HAL, run the port state machines, move audio,
 * send queued events and periodic STATUS, feed the watchdog. */
#include "board.h"
#include "g711.h"
#include "protocol.h"
#include <string.h>

void board_init(board_t *b)
{
    uint32_t now = hal_millis();
    memset(b, 0, sizeof *b);
    b->n_ports = hal_port_count();
    if (b->n_ports > BOARD_MAX_PORTS)
        b->n_ports = BOARD_MAX_PORTS;
    for (uint8_t i = 0; i < b->n_ports; i++) {
        port_t *p = &b->ports[i];
        p->kind = hal_port_kind(i);
        if (p->kind == HAL_PORT_FXS)
            fxs_init(&p->line.fxs, i, now);
        else
            fxo_init(&p->line.fxo, i, now);
        dtmf_det_init(&p->det);
        p->tx_gain = p->rx_gain = 1.0f;
    }
    frame_rx_init(&b->rx);
    evq_init(&b->events);
    wdt_init(&b->wdt, WDT_TASK_LINK | WDT_TASK_PORTS | WDT_TASK_AUDIO, WDT_PERIOD_MS, now);
    b->last_status = now;
    proto_send_status(b);
}

void board_send(board_t *b, uint8_t type, uint8_t port, const uint8_t *payload, uint16_t len)
{
    uint8_t out[FRAME_MAX_ENCODED];
    int n = frame_encode(type, b->tx_seq++, port, payload, len, out);
    if (n == 0 || !hal_serial_write(out, n))
        b->tx_drops++;            /* the seq gap tells the host */
}

uint8_t board_port_state(const board_t *b, uint8_t port)
{
    const port_t *p = &b->ports[port];
    return p->kind == HAL_PORT_FXS ? fxs_status(&p->line.fxs) : p->line.fxo.state;
}

bool board_port_active(const board_t *b, uint8_t port)
{
    const port_t *p = &b->ports[port];
    return p->kind == HAL_PORT_FXS ? fxs_status(&p->line.fxs) == 1 : p->line.fxo.state == FXO_OFFHOOK;
}

static void apply_gain(int16_t *x, int n, float g)
{
    for (int i = 0; i < n; i++) {
        float v = (float)x[i] * g;
        x[i] = (int16_t)(v > 32767.0f ? 32767 : v < -32768.0f ? -32768 : v);
    }
}

/* One 20 ms codec frame of a port: detect, forward, and play. */
static void port_audio(board_t *b, uint8_t i, const uint8_t in[HAL_FRAME_SAMPLES], uint32_t now)
{
    port_t *p = &b->ports[i];
    int16_t pcm[HAL_FRAME_SAMPLES], out[HAL_FRAME_SAMPLES];
    uint8_t ulaw[HAL_FRAME_SAMPLES];
    dtmf_hit_t hits[4];
    bool active = board_port_active(b, i);

    for (int k = 0; k < HAL_FRAME_SAMPLES; k++)
        pcm[k] = ulaw_decode(in[k]);
    int nhits = dtmf_det_process(&p->det, pcm, HAL_FRAME_SAMPLES, hits, 4);
    if (p->kind == HAL_PORT_FXO)
        fxo_audio_in(&p->line.fxo, now, pcm, HAL_FRAME_SAMPLES, hits, nhits, &b->events);
    if (active) {
        for (int k = 0; k < nhits; k++) {
            uint8_t ev[3] = {(uint8_t)hits[k].digit, (uint8_t)(hits[k].duration_ms >> 8),
                             (uint8_t)hits[k].duration_ms};
            evq_post(&b->events, FT_EV_DTMF, i, ev, 3);
        }
        if (p->rx_gain != 1.0f) {
            apply_gain(pcm, HAL_FRAME_SAMPLES, p->rx_gain);
            for (int k = 0; k < HAL_FRAME_SAMPLES; k++)
                ulaw[k] = ulaw_encode(pcm[k]);
            board_send(b, FT_AUDIO, i, ulaw, HAL_FRAME_SAMPLES);
        } else {
            board_send(b, FT_AUDIO, i, in, HAL_FRAME_SAMPLES);
        }
    } else {
        p->jb_count = 0;          /* no stale host audio when the call starts */
    }

    /* Local signals (caller ID, dialling, tones) take the line over host audio. */
    bool local = p->kind == HAL_PORT_FXS ? fxs_audio(&p->line.fxs, now, out, HAL_FRAME_SAMPLES)
                                         : fxo_audio_out(&p->line.fxo, out, HAL_FRAME_SAMPLES);
    if (!local && active && p->kind == HAL_PORT_FXS && p->tone.id != TONE_OFF) {
        tonegen_fill(&p->tone, out, HAL_FRAME_SAMPLES);
        local = true;
    }
    if (local) {
        for (int k = 0; k < HAL_FRAME_SAMPLES; k++)
            ulaw[k] = ulaw_encode(out[k]);
    } else if (active && p->jb_count > 0) {
        memcpy(ulaw, p->jb[p->jb_head], HAL_FRAME_SAMPLES);
        p->jb_head = (uint8_t)((p->jb_head + 1) % JB_FRAMES);
        p->jb_count--;
        if (p->tx_gain != 1.0f) {
            for (int k = 0; k < HAL_FRAME_SAMPLES; k++)
                out[k] = ulaw_decode(ulaw[k]);
            apply_gain(out, HAL_FRAME_SAMPLES, p->tx_gain);
            for (int k = 0; k < HAL_FRAME_SAMPLES; k++)
                ulaw[k] = ulaw_encode(out[k]);
        }
    } else {
        memset(ulaw, ULAW_SILENCE, HAL_FRAME_SAMPLES);
    }
    hal_codec_write(i, ulaw);
}

void board_poll(board_t *b)
{
    uint32_t now = hal_millis();
    uint8_t buf[64];
    frame_t f;
    int n;

    while ((n = hal_serial_read(buf, (int)sizeof buf)) > 0)
        for (int k = 0; k < n; k++)
            if (frame_rx_byte(&b->rx, buf[k], &f))
                proto_handle(b, &f, now);
    wdt_checkin(&b->wdt, WDT_TASK_LINK);

    for (uint8_t i = 0; i < b->n_ports; i++) {
        port_t *p = &b->ports[i];
        if (p->kind == HAL_PORT_FXS)
            fxs_poll(&p->line.fxs, now, &b->events);
        else
            fxo_poll(&p->line.fxo, now, &b->events);
    }
    wdt_checkin(&b->wdt, WDT_TASK_PORTS);

    for (uint8_t i = 0; i < b->n_ports; i++) {
        uint8_t in[HAL_FRAME_SAMPLES];
        if (hal_codec_read(i, in))
            port_audio(b, i, in, now);
    }
    wdt_checkin(&b->wdt, WDT_TASK_AUDIO);

    event_t e;
    while (evq_take(&b->events, &e))
        board_send(b, e.type, e.port, e.data, e.len);

    bool changed = false;
    for (uint8_t i = 0; i < b->n_ports; i++)
        if (board_port_state(b, i) != b->sent_state[i] || hal_line_alarms(i) != b->sent_alarms[i])
            changed = true;
    if (changed || (uint32_t)(now - b->last_status) >= STATUS_PERIOD_MS) {
        proto_send_status(b);
        b->last_status = now;
    }
    wdt_service(&b->wdt, now);
}
