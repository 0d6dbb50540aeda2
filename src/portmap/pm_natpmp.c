/*
 * NAT-PMP client (RFC 6886) through Debian's libnatpmp: non-blocking, with
 * its own socket connected to the gateway's port 5351. We wait on that
 * socket with poll() and our own deadline.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#define ENABLE_STRNATPMPERR /* declares strnatpmperr (exported anyway) */
#include <natpmp.h>

#include "common/clock.h"
#include "common/error.h"
#include "portmap/pm_internal.h"

/* libnatpmp resends by itself (RFC 6886 section 3.1: 250 ms, doubling);
 * between its timers we look at least this often. */
#define NATPMP_POLL_MAX_MS 50

typedef struct natpmp_state {
  natpmp_t np;
  bool open;
} natpmp_state_t;

/* A libnatpmp code as one of ours: a refusal or missing support is
 * QP_ERR_NOT_SUPPORTED (ask another protocol), the rest a socket error. */
static int natpmp_code(int r) {
  switch (r) {
  case NATPMP_ERR_NOGATEWAYSUPPORT:
  case NATPMP_ERR_UNSUPPORTEDVERSION:
  case NATPMP_ERR_UNSUPPORTEDOPCODE:
  case NATPMP_ERR_NOTAUTHORIZED:
  case NATPMP_ERR_NETWORKFAILURE:
  case NATPMP_ERR_OUTOFRESOURCES:
  case NATPMP_ERR_UNDEFINEDERROR:
    return QP_ERR_NOT_SUPPORTED;
  default:
    return QP_ERR_SOCKET;
  }
}

/* Wait for the answer to the pending request. */
static int await_response(pm_job_t *job, natpmp_t *np, int64_t deadline_ms,
                          const char *what, natpmpresp_t *resp) {
  char gw[UDP_ADDRSTRLEN];
  udp_addr_to_string(&job->gateway, gw, sizeof(gw));
  int64_t start = clock_now_ms();
  for (;;) {
    int r = readnatpmpresponseorretry(np, resp);
    if (r == 0)
      return QP_OK;
    if (r != NATPMP_TRYAGAIN) {
      int saved = errno;
      return err_fail(natpmp_code(r), "NAT-PMP: %s from %s failed after "
                                      "%lld ms: %s (libnatpmp %d, errno: %s)",
                      what, gw, (long long)(clock_now_ms() - start),
                      strnatpmperr(r), r, strerror(saved));
    }
    int64_t left = deadline_ms - clock_now_ms();
    if (left <= 0)
      return err_fail(QP_ERR_TIMEOUT, "NAT-PMP: no answer to %s from %s in "
                                      "%lld ms",
                      what, gw, (long long)(clock_now_ms() - start));
    struct pollfd pfd = {.fd = np->s, .events = POLLIN};
    if (poll(&pfd, 1, (int)(left < NATPMP_POLL_MAX_MS ? left
                                                      : NATPMP_POLL_MAX_MS)) <
            0 &&
        errno != EINTR)
      return err_fail(QP_ERR_SOCKET, "NAT-PMP: poll failed: %s",
                      strerror(errno));
  }
}

static int send_failed(int r) {
  return err_fail(QP_ERR_SOCKET, "NAT-PMP: sending failed: %s (errno: %s)",
                  strnatpmperr(r), strerror(errno));
}

static int open_state(pm_job_t *job) {
  if (job->priv)
    return QP_OK;
  natpmp_state_t *st = calloc(1, sizeof(*st));
  if (!st)
    return err_fail(QP_ERR_NOMEM, "NAT-PMP: out of memory");
  in_addr_t gw = ((struct sockaddr_in *)&job->gateway.ss)->sin_addr.s_addr;
  int r = initnatpmp(&st->np, 1, gw);
  if (r < 0) {
    free(st);
    return err_fail(QP_ERR_SOCKET, "NAT-PMP: socket towards the gateway: %s "
                                   "(libnatpmp %d, errno: %s)",
                    strnatpmperr(r), r, strerror(errno));
  }
  st->open = true;
  job->priv = st;
  return QP_OK;
}

/* Public address (opcode 0), then the UDP mapping (opcode 1): NAT-PMP
 * answers a mapping with the port only (RFC 6886 sections 3.2, 3.3). */
static int natpmp_map(pm_job_t *job, int64_t deadline_ms) {
  int rc = open_state(job);
  if (rc != QP_OK)
    return rc;
  natpmp_t *np = &((natpmp_state_t *)job->priv)->np;
  natpmpresp_t resp;
  int r = sendpublicaddressrequest(np);
  if (r < 0)
    return send_failed(r);
  rc = await_response(job, np, deadline_ms, "public address request", &resp);
  if (rc != QP_OK)
    return rc;
  struct in_addr public_ip = resp.pnu.publicaddress.addr;
  uint16_t port = udp_addr_port(&job->internal);
  /* A renewal asks for the port it already has (RFC 6886 section 3.3). */
  uint16_t want = job->granted_s ? udp_addr_port(&job->external) : port;
  r = sendnewportmappingrequest(np, NATPMP_PROTOCOL_UDP, port, want,
                                job->lifetime_s);
  if (r < 0)
    return send_failed(r);
  rc = await_response(job, np, deadline_ms, "UDP mapping request", &resp);
  if (rc != QP_OK)
    return rc;
  if (resp.pnu.newportmapping.lifetime == 0 ||
      resp.pnu.newportmapping.mappedpublicport == 0)
    return err_fail(QP_ERR_PROTOCOL, "NAT-PMP: the gateway granted lifetime "
                                     "%u and port %u",
                    (unsigned)resp.pnu.newportmapping.lifetime,
                    resp.pnu.newportmapping.mappedpublicport);
  struct sockaddr_in *sin = (struct sockaddr_in *)&job->external.ss;
  memset(&job->external, 0, sizeof(job->external));
  sin->sin_family = AF_INET;
  sin->sin_addr = public_ip;
  sin->sin_port = htons(resp.pnu.newportmapping.mappedpublicport);
  job->external.len = sizeof(*sin);
  job->granted_s = (uint32_t)resp.pnu.newportmapping.lifetime;
  return QP_OK;
}

/* Delete: the same request with lifetime 0 (RFC 6886 section 3.4). */
static int natpmp_unmap(pm_job_t *job, int64_t deadline_ms) {
  if (!job->priv)
    return QP_OK;
  natpmp_t *np = &((natpmp_state_t *)job->priv)->np;
  int r = sendnewportmappingrequest(np, NATPMP_PROTOCOL_UDP,
                                    udp_addr_port(&job->internal), 0, 0);
  if (r < 0)
    return send_failed(r);
  natpmpresp_t resp;
  return await_response(job, np, deadline_ms, "mapping delete", &resp);
}

static void natpmp_release(pm_job_t *job) {
  natpmp_state_t *st = job->priv;
  if (st && st->open)
    closenatpmp(&st->np);
  free(st);
  job->priv = NULL;
}

const pm_proto_ops_t pm_natpmp_ops = {.proto = PORTMAP_NATPMP,
                                      .map = natpmp_map,
                                      .unmap = natpmp_unmap,
                                      .release = natpmp_release};
