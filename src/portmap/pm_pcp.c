/*
 * PCP MAP client (RFC 6887) on the udp layer: no Debian library exists, and
 * the part needed (one opcode, IPv4, no options) is small.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/error.h"
#include "portmap/pm_internal.h"

/* First resend after this long, doubling after each: RFC 6887 section 8.1.1
 * starts at 3 s, far beyond the 250 ms gathering budget, so we resend
 * sooner; a LAN answer takes well under 10 ms, so 3 tries fit in 250 ms. */
#define PCP_RESEND_FIRST_MS 60
/* Answers larger than this carry options we do not read (RFC 6887
 * section 7: at most 1100 bytes). */
#define PCP_RECV_MAX 1100

typedef struct pcp_state {
  uint8_t nonce[PM_PCP_NONCE_LEN]; /* the same for renewals and delete
                                      (RFC 6887 section 11.2) */
} pcp_state_t;

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}

/* An IPv4 address as an IPv4-mapped IPv6 one, ::ffff:a.b.c.d (RFC 6887
 * section 5); ip in network byte order. */
static void put_mapped(uint8_t *p, uint32_t ip) {
  memset(p, 0, 10);
  p[10] = p[11] = 0xff;
  memcpy(p + 12, &ip, 4);
}

static bool get_mapped(const uint8_t *p, uint32_t *ip) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(p, prefix, sizeof(prefix)) != 0)
    return false;
  memcpy(ip, p + 12, 4);
  return true;
}

/* Opcode part shared by request and response (RFC 6887 section 11.1):
 *   nonce(12) protocol(1) reserved(3) internal port(2) external port(2)
 *   external IP(16) */
static void put_map_body(uint8_t *p, const pm_pcp_map_t *m) {
  memcpy(p, m->nonce, PM_PCP_NONCE_LEN);
  p[12] = PM_PCP_PROTO_UDP;
  p[13] = p[14] = p[15] = 0;
  put16(p + 16, m->internal_port);
  put16(p + 18, m->external_port);
  put_mapped(p + 20, m->external_ip);
}

static int get_map_body(const uint8_t *p, pm_pcp_map_t *m) {
  memcpy(m->nonce, p, PM_PCP_NONCE_LEN);
  if (p[12] != PM_PCP_PROTO_UDP)
    return err_fail(QP_ERR_PROTOCOL, "PCP MAP for protocol %u, not UDP (17)",
                    p[12]);
  m->internal_port = get16(p + 16);
  m->external_port = get16(p + 18);
  if (!get_mapped(p + 20, &m->external_ip))
    return err_fail(QP_ERR_PROTOCOL, "PCP MAP external address is not an "
                                     "IPv4-mapped address");
  return QP_OK;
}

/* Request header (RFC 6887 section 7.1):
 *   version(1) R|opcode(1) reserved(2) lifetime(4) client IP(16) */
int pm_pcp_encode_request(const pm_pcp_map_t *req, uint8_t *buf, size_t cap) {
  if (cap < PM_PCP_MAP_MSG_LEN)
    return err_fail(QP_ERR_INVALID, "PCP request needs %d bytes, got %zu",
                    PM_PCP_MAP_MSG_LEN, cap);
  buf[0] = PM_PCP_VERSION;
  buf[1] = PM_PCP_OPCODE_MAP;
  buf[2] = buf[3] = 0;
  put32(buf + 4, req->lifetime_s);
  put_mapped(buf + 8, req->client_ip);
  put_map_body(buf + PM_PCP_HEADER_LEN, req);
  return PM_PCP_MAP_MSG_LEN;
}

int pm_pcp_decode_request(const uint8_t *buf, size_t len, pm_pcp_map_t *out) {
  if (len < PM_PCP_MAP_MSG_LEN || buf[0] != PM_PCP_VERSION ||
      buf[1] != PM_PCP_OPCODE_MAP)
    return err_fail(QP_ERR_PROTOCOL, "not a PCP MAP request (%zu bytes)", len);
  pm_pcp_map_t m = {.lifetime_s = get32(buf + 4)};
  if (!get_mapped(buf + 8, &m.client_ip))
    return err_fail(QP_ERR_PROTOCOL, "PCP client address is not IPv4-mapped");
  int rc = get_map_body(buf + PM_PCP_HEADER_LEN, &m);
  if (rc == QP_OK)
    *out = m;
  return rc;
}

/* Response header (RFC 6887 section 7.2):
 *   version(1) R|opcode(1) reserved(1) result(1) lifetime(4) epoch(4)
 *   reserved(12) */
int pm_pcp_encode_response(const pm_pcp_map_t *resp, uint8_t *buf,
                           size_t cap) {
  if (cap < PM_PCP_MAP_MSG_LEN)
    return err_fail(QP_ERR_INVALID, "PCP response needs %d bytes, got %zu",
                    PM_PCP_MAP_MSG_LEN, cap);
  memset(buf, 0, PM_PCP_HEADER_LEN);
  buf[0] = PM_PCP_VERSION;
  buf[1] = PM_PCP_RESPONSE_BIT | PM_PCP_OPCODE_MAP;
  buf[3] = resp->result;
  put32(buf + 4, resp->lifetime_s);
  put32(buf + 8, resp->epoch_s);
  put_map_body(buf + PM_PCP_HEADER_LEN, resp);
  return PM_PCP_MAP_MSG_LEN;
}

int pm_pcp_decode_response(const uint8_t *buf, size_t len, pm_pcp_map_t *out) {
  /* A NAT-PMP-only server answers version 2 with its own version 0 and
   * result 1, UNSUPP_VERSION (RFC 6887 section 9). */
  if (len >= 4 && buf[0] != PM_PCP_VERSION)
    return err_fail(QP_ERR_NOT_SUPPORTED,
                    "the gateway speaks NAT-PMP/PCP version %u, not PCP "
                    "version 2",
                    buf[0]);
  if (len < PM_PCP_HEADER_LEN ||
      buf[1] != (PM_PCP_RESPONSE_BIT | PM_PCP_OPCODE_MAP))
    return err_fail(QP_ERR_PROTOCOL, "not a PCP MAP response (%zu bytes, "
                                     "opcode byte 0x%02x)",
                    len, len > 1 ? buf[1] : 0);
  pm_pcp_map_t m = {.result = buf[3],
                    .lifetime_s = get32(buf + 4),
                    .epoch_s = get32(buf + 8)};
  /* An error answer may come without the opcode part (section 7.2). */
  if (len >= PM_PCP_MAP_MSG_LEN) {
    int rc = get_map_body(buf + PM_PCP_HEADER_LEN, &m);
    if (rc != QP_OK)
      return rc;
  } else if (m.result == PM_PCP_SUCCESS) {
    return err_fail(QP_ERR_PROTOCOL, "PCP MAP success of %zu bytes, need %d",
                    len, PM_PCP_MAP_MSG_LEN);
  }
  *out = m;
  return QP_OK;
}

const char *pm_pcp_result_name(uint8_t result) {
  static const char *const names[] = {
      "SUCCESS",           "UNSUPP_VERSION",   "NOT_AUTHORIZED",
      "MALFORMED_REQUEST", "UNSUPP_OPCODE",    "UNSUPP_OPTION",
      "MALFORMED_OPTION",  "NETWORK_FAILURE",  "NO_RESOURCES",
      "UNSUPP_PROTOCOL",   "USER_EX_QUOTA",    "CANNOT_PROVIDE_EXTERNAL",
      "ADDRESS_MISMATCH",  "EXCESSIVE_REMOTE_PEERS"};
  if (result < sizeof(names) / sizeof(names[0]))
    return names[result];
  return "unknown result";
}

/* ------------------------------------------------------------------------ */
/* The exchange                                                             */
/* ------------------------------------------------------------------------ */

static uint32_t ipv4_of(const udp_addr_t *a) {
  return ((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr;
}

/* Wait for the answer to our nonce from the gateway; 1 = got one, 0 = not
 * before until_ms, or an error code. */
static int await_answer(udp_socket_t *sock, const pm_job_t *job,
                        const uint8_t *nonce, int64_t until_ms,
                        pm_pcp_map_t *out) {
  for (;;) {
    uint8_t buf[PCP_RECV_MAX];
    size_t len = 0;
    udp_addr_t from;
    int got = pm_recv_until(&sock, 1, until_ms, buf, sizeof(buf), &len,
                            &from, "PCP");
    if (got <= 0)
      return got;
    /* Only the gateway's own answers count (RFC 6887 section 8.3). */
    if (!udp_addr_equal(&from, &job->gateway))
      continue;
    pm_pcp_map_t m;
    int rc = pm_pcp_decode_response(buf, len, &m);
    if (rc == QP_ERR_NOT_SUPPORTED)
      return rc;
    if (rc != QP_OK || (m.result == PM_PCP_SUCCESS &&
                        memcmp(m.nonce, nonce, PM_PCP_NONCE_LEN) != 0))
      continue; /* not ours: keep waiting */
    *out = m;
    return 1;
  }
}

/* One request (map, renew, or delete with lifetime 0), resent until the
 * answer or deadline_ms. */
static int exchange(pm_job_t *job, uint32_t lifetime_s, int64_t deadline_ms,
                    pm_pcp_map_t *answer) {
  pcp_state_t *st = job->priv;
  pm_pcp_map_t req = {.lifetime_s = lifetime_s,
                      .internal_port = udp_addr_port(&job->internal),
                      .external_port = udp_addr_port(&job->internal),
                      .client_ip = ipv4_of(&job->internal)};
  memcpy(req.nonce, st->nonce, PM_PCP_NONCE_LEN);
  /* A renewal asks for the port it has (RFC 6887 section 11.2). */
  if (job->granted_s && udp_addr_port(&job->external)) {
    req.external_port = udp_addr_port(&job->external);
    req.external_ip = ipv4_of(&job->external);
  }
  uint8_t msg[PM_PCP_MAP_MSG_LEN];
  int len = pm_pcp_encode_request(&req, msg, sizeof(msg));
  if (len < 0)
    return len;
  /* The request must come from the client address it names (section
   * 8.1), so the socket is bound to that address. */
  udp_addr_t bind_addr = job->internal;
  udp_addr_set_port(&bind_addr, 0);
  udp_socket_t sock;
  int rc = udp_socket_open(&bind_addr, &sock);
  if (rc == QP_OK)
    rc = pm_connect(&sock, &job->gateway); /* hears "port unreachable" */
  if (rc != QP_OK) {
    udp_socket_close(&sock);
    return rc;
  }
  int64_t start = clock_now_ms();
  int64_t wait = PCP_RESEND_FIRST_MS;
  int got = 0;
  while (got == 0 && clock_now_ms() < deadline_ms) {
    rc = udp_send(&sock, &job->gateway, msg, (size_t)len, 0);
    if (rc != QP_OK)
      break;
    int64_t until = clock_now_ms() + wait;
    got = await_answer(&sock, job, st->nonce,
                       until < deadline_ms ? until : deadline_ms, answer);
    wait *= 2;
  }
  udp_socket_close(&sock);
  if (rc != QP_OK || got < 0)
    return rc != QP_OK ? rc : got;
  char gw[UDP_ADDRSTRLEN];
  udp_addr_to_string(&job->gateway, gw, sizeof(gw));
  if (got == 0)
    return err_fail(QP_ERR_TIMEOUT, "PCP: no answer from %s in %lld ms", gw,
                    (long long)(clock_now_ms() - start));
  if (answer->result != PM_PCP_SUCCESS)
    return err_fail(QP_ERR_NOT_SUPPORTED,
                    "PCP: %s refused MAP of UDP port %u: %s (%u)", gw,
                    req.internal_port, pm_pcp_result_name(answer->result),
                    answer->result);
  return QP_OK;
}

static int pcp_map(pm_job_t *job, int64_t deadline_ms) {
  if (!job->priv) {
    pcp_state_t *st = calloc(1, sizeof(*st));
    if (!st)
      return err_fail(QP_ERR_NOMEM, "PCP: out of memory");
    if (getrandom(st->nonce, sizeof(st->nonce), 0) != sizeof(st->nonce)) {
      free(st);
      return err_fail(QP_ERR_INTERNAL, "PCP: getrandom failed: %s",
                      strerror(errno));
    }
    job->priv = st;
  }
  pm_pcp_map_t answer;
  int rc = exchange(job, job->lifetime_s, deadline_ms, &answer);
  if (rc != QP_OK)
    return rc;
  if (answer.lifetime_s == 0 || answer.external_port == 0)
    return err_fail(QP_ERR_PROTOCOL, "PCP: the gateway granted lifetime %u "
                                     "and port %u",
                    answer.lifetime_s, answer.external_port);
  struct sockaddr_in *sin = (struct sockaddr_in *)&job->external.ss;
  memset(&job->external, 0, sizeof(job->external));
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = answer.external_ip;
  sin->sin_port = htons(answer.external_port);
  job->external.len = sizeof(*sin);
  job->granted_s = answer.lifetime_s;
  return QP_OK;
}

/* Delete: the same MAP with lifetime 0 (RFC 6887 section 15). */
static int pcp_unmap(pm_job_t *job, int64_t deadline_ms) {
  if (!job->priv)
    return QP_OK;
  pm_pcp_map_t answer;
  return exchange(job, 0, deadline_ms, &answer);
}

static void pcp_release(pm_job_t *job) {
  free(job->priv);
  job->priv = NULL;
}

const pm_proto_ops_t pm_pcp_ops = {.proto = PORTMAP_PCP,
                                   .map = pcp_map,
                                   .unmap = pcp_unmap,
                                   .release = pcp_release};
