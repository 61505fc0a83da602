/* protocol.c - what the board does with each host frame (hw/PROTOCOL.md
 * "Frame types"): management replies, command dispatch and ACK status. */
#include "protocol.h"
#include "board.h"
#include <math.h>
#include <string.h>

void proto_send_caps(board_t *b)
{
    uint8_t p[4 + 2 * BOARD_MAX_PORTS + 1 + 32];
    int n = 0;
    p[n++] = PROTOCOL_VERSION;
    p[n++] = FW_MAJOR;
    p[n++] = FW_MINOR;
    p[n++] = b->n_ports;
    for (uint8_t i = 0; i < b->n_ports; i++) {
        p[n++] = b->ports[i].kind;
        p[n++] = 0x01;                        /* audio on this link */
    }
    const char *serial = hal_serial_number();
    /* PROTOCOL.md: each CAPS starts the sequence numbers afresh. */
    b->tx_seq = 0;
    size_t sl = strlen(serial);
    if (sl > 32)
        sl = 32;
    p[n++] = (uint8_t)sl;
    memcpy(p + n, serial, sl);
    board_send(b, FT_CAPS, FRAME_PORT_BOARD, p, (uint16_t)(n + (int)sl));
}

void proto_send_status(board_t *b)
{
    uint8_t p[4 * BOARD_MAX_PORTS];
    for (uint8_t i = 0; i < b->n_ports; i++) {
        int16_t line = hal_line_measure(i);
        p[4 * i] = board_port_state(b, i);
        p[4 * i + 1] = (uint8_t)((uint16_t)line >> 8);
        p[4 * i + 2] = (uint8_t)line;
        p[4 * i + 3] = hal_line_alarms(i);
        b->sent_state[i] = p[4 * i];
        b->sent_alarms[i] = p[4 * i + 3];
    }
    board_send(b, FT_STATUS, FRAME_PORT_BOARD, p, (uint16_t)(4 * b->n_ports));
}

/* RING payload: cadence, cid_mode, len + number, [len + name]. */
static enum cmd_status cmd_ring(port_t *p, const frame_t *f, uint32_t now)
{
    if (p->kind != HAL_PORT_FXS)
        return CMD_UNSUPPORTED;
    if (f->len < 3 || 3 + f->payload[2] > f->len)
        return CMD_BAD_ARG;
    int nlen = f->payload[2];
    const char *number = (const char *)f->payload + 3;
    int at = 3 + nlen, namelen = 0;
    const char *name = "";
    if (at < f->len) {
        namelen = f->payload[at];
        if (at + 1 + namelen > f->len)
            return CMD_BAD_ARG;
        name = (const char *)f->payload + at + 1;
    }
    return fxs_ring(&p->line.fxs, now, f->payload[0], f->payload[1], number, nlen, name, namelen);
}

static float db_to_gain(int8_t db)
{
    return powf(10.0f, (float)db / 20.0f);
}

static enum cmd_status dispatch(board_t *b, const frame_t *f, uint32_t now)
{
    if (f->port >= b->n_ports)
        return CMD_BAD_PORT;
    port_t *p = &b->ports[f->port];
    switch (f->type) {
    case FT_RING:
        return cmd_ring(p, f, now);
    case FT_STOP_RING:
        return p->kind == HAL_PORT_FXS ? fxs_stop_ring(&p->line.fxs) : CMD_UNSUPPORTED;
    case FT_OFFHOOK:
        return p->kind == HAL_PORT_FXO ? fxo_offhook(&p->line.fxo) : CMD_UNSUPPORTED;
    case FT_ONHOOK:
        return p->kind == HAL_PORT_FXO ? fxo_onhook(&p->line.fxo, &b->events) : CMD_UNSUPPORTED;
    case FT_DIAL:
        if (p->kind != HAL_PORT_FXO)
            return CMD_UNSUPPORTED;
        if (f->len < 1 || f->payload[0] + 1 != f->len || f->payload[0] == 0)
            return CMD_BAD_ARG;
        return fxo_dial(&p->line.fxo, (const char *)f->payload + 1, f->payload[0]);
    case FT_SET_GAIN: {
        if (f->len != 2)
            return CMD_BAD_ARG;
        int8_t tx = (int8_t)f->payload[0], rx = (int8_t)f->payload[1];
        if (tx < -12 || tx > 12 || rx < -12 || rx > 12)
            return CMD_BAD_ARG;
        p->tx_gain = db_to_gain(tx);
        p->rx_gain = db_to_gain(rx);
        return CMD_OK;
    }
    case FT_TONE:
        if (p->kind != HAL_PORT_FXS)
            return CMD_UNSUPPORTED;
        if (f->len != 1 || f->payload[0] >= TONE_COUNT)
            return CMD_BAD_ARG;
        tonegen_set(&p->tone, f->payload[0]);
        return CMD_OK;
    default:
        return CMD_UNSUPPORTED;
    }
}

static void queue_audio(board_t *b, const frame_t *f)
{
    if (f->port >= b->n_ports || f->len != HAL_FRAME_SAMPLES || !board_port_active(b, f->port))
        return;                               /* not acknowledged, never answered */
    port_t *p = &b->ports[f->port];
    if (p->jb_count == JB_FRAMES) {           /* host runs ahead: drop the oldest */
        p->jb_head = (uint8_t)((p->jb_head + 1) % JB_FRAMES);
        p->jb_count--;
        p->audio_overruns++;
    }
    memcpy(p->jb[(p->jb_head + p->jb_count) % JB_FRAMES], f->payload, HAL_FRAME_SAMPLES);
    p->jb_count++;
}

void proto_handle(board_t *b, const frame_t *f, uint32_t now)
{
    uint8_t ack[2];
    switch (f->type) {
    case FT_HELLO:
        proto_send_caps(b);
        return;
    case FT_PING:
        if (f->len == 4)
            board_send(b, FT_PONG, FRAME_PORT_BOARD, f->payload, 4);
        return;
    case FT_AUDIO:
        queue_audio(b, f);
        return;
    default:
        break;
    }
    if (f->type < 0x10 || f->type > 0x1F)
        return;                               /* not a command: nothing to answer */
    ack[0] = f->seq;
    ack[1] = (uint8_t)dispatch(b, f, now);
    board_send(b, FT_ACK, f->port, ack, 2);
}
