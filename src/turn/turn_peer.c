/* Permissions (RFC 8656 section 9), channels (section 12) and the data
 * they carry: Send/Data indications (section 11) and ChannelData. */
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "turn/turn_internal.h"
#include "udp/udp.h"

/* One refreshed thing of a peer: its permission or its channel binding. */
typedef struct peer_item {
  turn_peer_state *state;
  uint64_t *refresh_ns;
  turn_txn *txn;
  uint16_t method;
  uint32_t lifetime_s;
  const char *what;
} peer_item;

static peer_item permission_item(turn_peer *p) {
  return (peer_item){&p->permission,
                     &p->permission_refresh_ns,
                     &p->permission_txn,
                     TURN_METHOD_CREATE_PERMISSION,
                     TURN_PERMISSION_LIFETIME_S,
                     "CreatePermission"};
}

static peer_item binding_item(turn_peer *p) {
  return (peer_item){&p->binding,
                     &p->binding_refresh_ns,
                     &p->binding_txn,
                     TURN_METHOD_CHANNEL_BIND,
                     TURN_CHANNEL_LIFETIME_S,
                     "ChannelBind"};
}

static bool wanted(turn_peer_state s) {
  return s == TURN_PEER_PENDING || s == TURN_PEER_READY;
}

turn_peer *turn_peer_find(turn_client *c, const udp_addr_t *addr) {
  for (size_t i = 0; c && addr && i < TURN_MAX_PEERS; i++)
    if (c->peers[i].used && udp_addr_equal(&c->peers[i].addr, addr))
      return &c->peers[i];
  return NULL;
}

static const turn_peer *find_const(const turn_client *c,
                                   const udp_addr_t *addr) {
  return turn_peer_find((turn_client *)c, addr);
}

static int peer_get(turn_client *c, const udp_addr_t *addr, turn_peer **out) {
  if (!c || !addr || !turn_addr_usable(addr))
    return err_fail(QP_ERR_INVALID, "TURN peer: missing or unknown address");
  if (c->state != TURN_STATE_IDLE && c->state != TURN_STATE_ALLOCATING &&
      c->state != TURN_STATE_ALLOCATED)
    return err_fail(QP_ERR_STATE, "TURN client is %s: no new peers",
                    turn_state_name(c->state));
  *out = turn_peer_find(c, addr);
  for (size_t i = 0; !*out && i < TURN_MAX_PEERS; i++) {
    if (!c->peers[i].used) {
      memset(&c->peers[i], 0, sizeof(c->peers[i]));
      c->peers[i].used = true;
      c->peers[i].addr = *addr;
      *out = &c->peers[i];
    }
  }
  if (!*out)
    return err_fail(QP_ERR_NOMEM, "TURN client: all %d peer slots are in use",
                    TURN_MAX_PEERS);
  return 0;
}

/* Ask for item: due at once (sent as soon as the allocation is ready). */
static void want(peer_item it, uint64_t now_ns) {
  if (wanted(*it.state))
    return;
  *it.state = TURN_PEER_PENDING;
  *it.refresh_ns = now_ns;
  it.txn->active = false;
}

int turn_client_permit(turn_client *c, const udp_addr_t *peer,
                       uint64_t now_ns) {
  turn_peer *p;
  int rc = peer_get(c, peer, &p);
  if (rc == 0)
    want(permission_item(p), now_ns);
  return rc;
}

int turn_client_bind(turn_client *c, const udp_addr_t *peer, uint64_t now_ns) {
  turn_peer *p;
  int rc = peer_get(c, peer, &p);
  if (rc)
    return rc;
  /* A peer keeps its number for the allocation's life (RFC 8656 section
   * 12: a channel is bound to one peer; rebinding it elsewhere fails). */
  if (p->channel == 0)
    p->channel = c->next_channel++;
  want(binding_item(p), now_ns);
  return 0;
}

turn_peer_state turn_client_permission(const turn_client *c,
                                       const udp_addr_t *peer) {
  const turn_peer *p = find_const(c, peer);
  return p ? p->permission : TURN_PEER_NONE;
}

turn_peer_state turn_client_binding(const turn_client *c,
                                    const udp_addr_t *peer) {
  const turn_peer *p = find_const(c, peer);
  return p ? p->binding : TURN_PEER_NONE;
}

uint16_t turn_client_channel(const turn_client *c, const udp_addr_t *peer) {
  const turn_peer *p = find_const(c, peer);
  return p && p->binding == TURN_PEER_READY ? p->channel : 0;
}

const char *turn_client_peer_error(const turn_client *c,
                                   const udp_addr_t *peer) {
  const turn_peer *p = find_const(c, peer);
  return p ? p->error : "";
}

/* ---- transactions ------------------------------------------------------ */

static void item_failed(turn_client *c, turn_peer *p, peer_item it,
                        const char *why) {
  char server[UDP_ADDRSTRLEN], peer[UDP_ADDRSTRLEN];
  *it.state = TURN_PEER_FAILED;
  it.txn->active = false;
  snprintf(p->error, sizeof(p->error), "TURN server %s: %s for peer %s %s",
           turn_server_text(c, server), it.what,
           udp_addr_to_string(&p->addr, peer, sizeof(peer)), why);
  QP_LOG_WARN("%s", p->error);
}

static int poll_item(turn_client *c, turn_peer *p, peer_item it,
                     uint64_t now_ns, uint8_t *out, size_t cap,
                     size_t *out_len) {
  if (wanted(*it.state) && !it.txn->active && now_ns >= *it.refresh_ns) {
    int rc = turn_txn_start(it.txn, it.method, now_ns);
    if (rc)
      return rc;
  }
  switch (turn_txn_check(c, it.txn, now_ns)) {
  case TURN_TXN_EXPIRED: {
    char why[96];
    snprintf(why, sizeof(why), "got no answer in %llu ms (%u transmissions)",
             (unsigned long long)turn_txn_elapsed_ms(it.txn, now_ns),
             it.txn->sent);
    item_failed(c, p, it, why);
    return 0;
  }
  case TURN_TXN_SEND: {
    int rc = turn_txn_send(c, it.txn, p, now_ns, out, cap, out_len);
    return rc ? rc : 1;
  }
  case TURN_TXN_WAIT:
    break;
  }
  return 0;
}

int turn_peer_poll(turn_client *c, uint64_t now_ns, uint8_t *out, size_t cap,
                   size_t *out_len) {
  for (size_t i = 0; i < TURN_MAX_PEERS; i++) {
    turn_peer *p = &c->peers[i];
    if (!p->used)
      continue;
    int rc = poll_item(c, p, permission_item(p), now_ns, out, cap, out_len);
    if (rc == 0)
      rc = poll_item(c, p, binding_item(p), now_ns, out, cap, out_len);
    if (rc)
      return rc;
  }
  return 0;
}

static uint64_t item_deadline(peer_item it) {
  if (it.txn->active)
    return it.txn->next_ns;
  return wanted(*it.state) ? *it.refresh_ns : UINT64_MAX;
}

uint64_t turn_peer_deadline(const turn_client *c) {
  uint64_t d = UINT64_MAX;
  for (size_t i = 0; i < TURN_MAX_PEERS; i++) {
    turn_peer *p = (turn_peer *)&c->peers[i];
    if (!p->used)
      continue;
    uint64_t a = item_deadline(permission_item(p));
    uint64_t b = item_deadline(binding_item(p));
    d = a < d ? a : d;
    d = b < d ? b : d;
  }
  return d;
}

static void on_item_answer(turn_client *c, turn_peer *p, peer_item it,
                           const stun_msg *msg, uint64_t now_ns) {
  if (!turn_response_trusted(c, it.txn, msg))
    return;
  if (msg->cls == STUN_CLASS_SUCCESS) {
    *it.state = TURN_PEER_READY;
    *it.refresh_ns = turn_refresh_time(now_ns, it.lifetime_s);
    it.txn->active = false;
    p->error[0] = '\0';
    return;
  }
  if (turn_txn_challenge(c, it.txn, msg, now_ns) == TURN_CHALLENGE_RETRY)
    return;
  char code[128], why[160];
  snprintf(why, sizeof(why), "was refused: %s",
           turn_error_text(msg, code, sizeof(code)));
  item_failed(c, p, it, why);
}

static bool answers(const turn_txn *t, const stun_msg *msg) {
  return t->active && t->method == msg->method &&
         memcmp(t->txid, msg->txid, STUN_TXID_SIZE) == 0;
}

bool turn_peer_on_response(turn_client *c, const stun_msg *msg,
                           uint64_t now_ns) {
  for (size_t i = 0; i < TURN_MAX_PEERS; i++) {
    turn_peer *p = &c->peers[i];
    if (!p->used)
      continue;
    peer_item items[2] = {permission_item(p), binding_item(p)};
    for (size_t k = 0; k < 2; k++) {
      if (answers(items[k].txn, msg)) {
        on_item_answer(c, p, items[k], msg, now_ns);
        return true;
      }
    }
  }
  return false;
}

void turn_peer_stop_all(turn_client *c) {
  for (size_t i = 0; i < TURN_MAX_PEERS; i++) {
    turn_peer *p = &c->peers[i];
    p->permission_txn.active = false;
    p->binding_txn.active = false;
    if (wanted(p->permission))
      p->permission = TURN_PEER_NONE;
    if (wanted(p->binding))
      p->binding = TURN_PEER_NONE;
  }
}

/* ---- data -------------------------------------------------------------- */

turn_rx_kind turn_peer_channel_data(turn_client *c, const uint8_t *buf,
                                    size_t len, turn_rx *rx) {
  uint16_t channel;
  const uint8_t *data;
  size_t data_len;
  if (turn_channel_unwrap(buf, len, &channel, &data, &data_len) != 0)
    return TURN_RX_IGNORED;
  for (size_t i = 0; i < TURN_MAX_PEERS; i++) {
    const turn_peer *p = &c->peers[i];
    /* PENDING too: the server may relay before its answer arrives. */
    if (p->used && p->channel == channel && wanted(p->binding)) {
      rx->peer = p->addr;
      rx->data = data;
      rx->len = data_len;
      return TURN_RX_DATA;
    }
  }
  return TURN_RX_IGNORED;
}

turn_rx_kind turn_peer_data_indication(const stun_msg *msg, turn_rx *rx) {
  stun_bytes peer, data;
  if (!stun_msg_find_attr(msg, TURN_ATTR_XOR_PEER_ADDRESS, &peer) ||
      !stun_msg_find_attr(msg, TURN_ATTR_DATA, &data) ||
      stun_msg_decode_address(msg, TURN_ATTR_XOR_PEER_ADDRESS, peer, true,
                              &rx->peer) != 0)
    return TURN_RX_IGNORED;
  rx->data = data.data;
  rx->len = data.len;
  return TURN_RX_DATA;
}

/* Header, XOR-PEER-ADDRESS, DATA (padded) and FINGERPRINT. */
static size_t send_indication_size(const udp_addr_t *peer, size_t len) {
  size_t addr = peer->ss.ss_family == AF_INET6 ? 20 : 8;
  return STUN_HEADER_SIZE + STUN_ATTR_HEADER_SIZE + addr +
         STUN_ATTR_HEADER_SIZE + ((len + 3) & ~(size_t)3) +
         STUN_ATTR_HEADER_SIZE + 4;
}

/* RFC 8656 section 11.1: a Send indication carries XOR-PEER-ADDRESS and
 * DATA; indications are not authenticated. */
static int write_send_indication(const udp_addr_t *peer, const uint8_t *data,
                                 size_t len, uint8_t *out, size_t cap,
                                 size_t *out_len) {
  if (len > STUN_MAX_MESSAGE_SIZE - TURN_SEND_OVERHEAD ||
      send_indication_size(peer, len) > cap)
    return err_fail(QP_ERR_TOO_LARGE,
                    "TURN Send indication for %zu bytes does not fit in %zu",
                    len, cap);
  uint8_t txid[STUN_TXID_SIZE];
  stun_msg_writer w;
  int rc = stun_msg_new_txid(txid);
  if (rc == 0)
    rc = stun_msg_write_header(&w, out, cap, TURN_METHOD_SEND,
                               STUN_CLASS_INDICATION, txid);
  if (rc == 0)
    rc = stun_msg_write_xor_address(&w, TURN_ATTR_XOR_PEER_ADDRESS, peer);
  if (rc == 0)
    rc = stun_msg_write_attr(&w, TURN_ATTR_DATA, data, len);
  if (rc == 0)
    rc = stun_msg_write_fingerprint(&w);
  if (rc == 0)
    *out_len = w.len;
  return rc;
}

int turn_client_wrap(turn_client *c, const udp_addr_t *peer,
                     const uint8_t *data, size_t len, uint8_t *out, size_t cap,
                     size_t *out_len) {
  if (!c || !peer || (!data && len) || !out || !out_len)
    return err_fail(QP_ERR_INVALID, "turn_client_wrap: NULL argument");
  if (c->state != TURN_STATE_ALLOCATED)
    return err_fail(QP_ERR_STATE, "no TURN allocation to relay through (%s)",
                    turn_state_name(c->state));
  uint16_t channel = turn_client_channel(c, peer);
  if (channel)
    return turn_channel_wrap(channel, data, len, out, cap, out_len);
  return write_send_indication(peer, data, len, out, cap, out_len);
}
