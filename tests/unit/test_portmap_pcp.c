/* ctest: labels=loopback */
/*
 * test_portmap_pcp: the PCP MAP client (src/portmap/pm_pcp.c) and the
 * portmap life cycle (grant, renewal, delete, refusal, silence) against a
 * PCP server played by this test on 127.0.0.1. The real gateway
 * (miniupnpd) is in the lab: tests/lab/test_portmap.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "tu.h"

#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "portmap/pm_internal.h"
#include "portmap/portmap.h"

/* The public address the fake gateway hands out (RFC 5737). */
#define FAKE_EXT_IP "192.0.2.77"
#define FAKE_EXT_PORT_OFFSET 1000
#define WAIT_MS 5000 /* bound on every wait for the other thread */

typedef enum fake_mode { FAKE_ANSWER, FAKE_REFUSE, FAKE_SILENT } fake_mode_t;

typedef struct fake_gw {
  udp_socket_t sock;
  atomic_int mode;
  atomic_bool stop;
  pthread_mutex_t lock;
  int maps;    /* requests with a lifetime */
  int deletes; /* requests with lifetime 0 */
  pm_pcp_map_t first, last;
  uint32_t client_ip;
  pthread_t thread;
} fake_gw_t;

static void fake_answer(fake_gw_t *g, const pm_pcp_map_t *req,
                        const udp_addr_t *to) {
  pm_pcp_map_t resp = *req;
  resp.result = atomic_load(&g->mode) == FAKE_REFUSE ? 2 /* NOT_AUTHORIZED */
                                                     : PM_PCP_SUCCESS;
  resp.external_port = (uint16_t)(req->internal_port + FAKE_EXT_PORT_OFFSET);
  inet_pton(AF_INET, FAKE_EXT_IP, &resp.external_ip);
  uint8_t out[PM_PCP_MAP_MSG_LEN];
  int n = pm_pcp_encode_response(&resp, out, sizeof(out));
  if (n > 0)
    udp_send(&g->sock, to, out, (size_t)n, 0);
}

static void *fake_main(void *arg) {
  fake_gw_t *g = arg;
  while (!atomic_load(&g->stop)) {
    struct pollfd pfd = {.fd = g->sock.fd, .events = POLLIN};
    if (poll(&pfd, 1, 20) <= 0)
      continue;
    uint8_t buf[1100];
    size_t len = 0;
    udp_addr_t from;
    pm_pcp_map_t req;
    if (udp_recv_one(&g->sock, buf, sizeof(buf), &len, &from) != 1 ||
        pm_pcp_decode_request(buf, len, &req) != QP_OK)
      continue;
    pthread_mutex_lock(&g->lock);
    if (req.lifetime_s)
      g->maps++;
    else
      g->deletes++;
    if (g->maps + g->deletes == 1)
      g->first = req;
    g->last = req;
    pthread_mutex_unlock(&g->lock);
    if (atomic_load(&g->mode) != FAKE_SILENT)
      fake_answer(g, &req, &from);
  }
  return NULL;
}

static void fake_start(fake_gw_t *g, fake_mode_t mode) {
  memset(g, 0, sizeof(*g));
  udp_addr_t at;
  TU_QP_OK(udp_addr_from_ip("127.0.0.1", 0, &at));
  TU_QP_OK(udp_socket_open(&at, &g->sock));
  atomic_store(&g->mode, mode);
  pthread_mutex_init(&g->lock, NULL);
  assert_int_equal(pthread_create(&g->thread, NULL, fake_main, g), 0);
}

static void fake_stop(fake_gw_t *g) {
  atomic_store(&g->stop, true);
  pthread_join(g->thread, NULL);
  udp_socket_close(&g->sock);
  pthread_mutex_destroy(&g->lock);
}

static int fake_count(fake_gw_t *g, bool deletes) {
  pthread_mutex_lock(&g->lock);
  int n = deletes ? g->deletes : g->maps;
  pthread_mutex_unlock(&g->lock);
  return n;
}

/* A portmap asking the fake gateway by PCP only, for local port `port`. */
static portmap_config_t pcp_config(const fake_gw_t *g, uint16_t port,
                                   char *gw, size_t gw_size) {
  udp_addr_to_string(&g->sock.local, gw, gw_size);
  portmap_config_t cfg = {.protocols = PORTMAP_PCP, .gateway = gw};
  udp_addr_from_ip("127.0.0.1", port, &cfg.local);
  return cfg;
}

static void test_codec_roundtrip(void **state) {
  (void)state;
  pm_pcp_map_t req = {.lifetime_s = 7200,
                      .internal_port = 4000,
                      .external_port = 4000,
                      .client_ip = htonl(0x0a000102)};
  memset(req.nonce, 0xa5, sizeof(req.nonce));
  uint8_t buf[PM_PCP_MAP_MSG_LEN];
  assert_int_equal(pm_pcp_encode_request(&req, buf, sizeof(buf)),
                   PM_PCP_MAP_MSG_LEN);
  /* RFC 6887 section 7.1: version 2, opcode MAP, client address
   * ::ffff:10.0.1.2 at offset 8, protocol UDP at offset 36. */
  assert_int_equal(buf[0], 2);
  assert_int_equal(buf[1], 1);
  assert_int_equal(buf[18], 0xff);
  assert_int_equal(buf[19], 0xff);
  assert_int_equal(buf[20], 10);
  assert_int_equal(buf[23], 2);
  assert_int_equal(buf[36], 17);
  pm_pcp_map_t back;
  TU_QP_OK(pm_pcp_decode_request(buf, sizeof(buf), &back));
  assert_int_equal(back.lifetime_s, 7200);
  assert_int_equal(back.internal_port, 4000);
  assert_int_equal(back.client_ip, req.client_ip);
  assert_memory_equal(back.nonce, req.nonce, PM_PCP_NONCE_LEN);

  pm_pcp_map_t resp = back;
  resp.result = PM_PCP_SUCCESS;
  resp.external_port = 51000;
  resp.external_ip = htonl(0xc000024d);
  resp.epoch_s = 99;
  assert_int_equal(pm_pcp_encode_response(&resp, buf, sizeof(buf)),
                   PM_PCP_MAP_MSG_LEN);
  assert_int_equal(buf[1], 0x81); /* R bit */
  TU_QP_OK(pm_pcp_decode_response(buf, sizeof(buf), &back));
  assert_int_equal(back.external_port, 51000);
  assert_int_equal(back.external_ip, resp.external_ip);
  assert_int_equal(back.epoch_s, 99);
  assert_int_equal(back.result, PM_PCP_SUCCESS);
}

static void test_codec_rejects(void **state) {
  (void)state;
  uint8_t buf[PM_PCP_MAP_MSG_LEN] = {0};
  pm_pcp_map_t m;
  /* A NAT-PMP-only gateway answers with version 0 (RFC 6887 section 9). */
  buf[0] = 0;
  buf[1] = 0x80;
  buf[3] = PM_PCP_UNSUPP_VERSION;
  TU_QP_ERR(pm_pcp_decode_response(buf, 8, &m), QP_ERR_NOT_SUPPORTED);
  TU_ASSERT_CONTAINS(qp_last_error(), "version 0");
  /* A request is not a response. */
  buf[0] = 2;
  buf[1] = 1;
  TU_QP_ERR(pm_pcp_decode_response(buf, sizeof(buf), &m), QP_ERR_PROTOCOL);
  /* A success too short to carry the mapping. */
  buf[1] = 0x81;
  buf[3] = PM_PCP_SUCCESS;
  TU_QP_ERR(pm_pcp_decode_response(buf, 30, &m), QP_ERR_PROTOCOL);
  /* An error may come without the opcode part. */
  buf[3] = 8; /* NO_RESOURCES */
  TU_QP_OK(pm_pcp_decode_response(buf, PM_PCP_HEADER_LEN, &m));
  assert_int_equal(m.result, 8);
  assert_string_equal(pm_pcp_result_name(m.result), "NO_RESOURCES");
  TU_QP_ERR(pm_pcp_encode_request(&m, buf, 10), QP_ERR_INVALID);
}

/* Grant, renewal at half the lifetime with the same nonce, delete on stop
 * with lifetime 0 and that nonce. */
static void test_grant_renew_delete(void **state) {
  (void)state;
  fake_gw_t g;
  fake_start(&g, FAKE_ANSWER);
  char gw[UDP_ADDRSTRLEN];
  portmap_config_t cfg = pcp_config(&g, 4321, gw, sizeof(gw));
  cfg.lifetime_s = 2; /* renewed after 1 s */
  portmap_t *pm = NULL;
  TU_QP_OK(portmap_start(&cfg, &pm));
  portmap_result_t r;
  TU_QP_OK(portmap_wait(pm, -1, &r));
  char ext[UDP_ADDRSTRLEN];
  assert_string_equal(udp_addr_to_string(&r.external, ext, sizeof(ext)),
                      FAKE_EXT_IP ":5321");
  assert_int_equal(r.proto, PORTMAP_PCP);
  assert_int_equal(r.lifetime_s, 2);
  assert_false(r.late);
  assert_int_equal(g.first.internal_port, 4321);
  assert_int_equal(g.first.client_ip, htonl(INADDR_LOOPBACK));

  int64_t until = tu_now_ms() + WAIT_MS;
  while (tu_now_ms() < until && (portmap_status(pm, &r) != QP_OK ||
                                 r.refreshes < 1))
    poll(NULL, 0, 20);
  assert_true(r.refreshes >= 1);
  assert_false(r.lost);
  assert_true(fake_count(&g, false) >= 2);
  /* The renewal asks for the port it holds, with the same nonce. */
  assert_int_equal(g.last.external_port, 5321);
  assert_memory_equal(g.last.nonce, g.first.nonce, PM_PCP_NONCE_LEN);

  portmap_stop(pm);
  assert_int_equal(fake_count(&g, true), 1);
  assert_int_equal(g.last.lifetime_s, 0);
  assert_memory_equal(g.last.nonce, g.first.nonce, PM_PCP_NONCE_LEN);
  fake_stop(&g);
}

static void test_refused(void **state) {
  (void)state;
  fake_gw_t g;
  fake_start(&g, FAKE_REFUSE);
  char gw[UDP_ADDRSTRLEN];
  portmap_config_t cfg = pcp_config(&g, 4322, gw, sizeof(gw));
  portmap_t *pm = NULL;
  TU_QP_OK(portmap_start(&cfg, &pm));
  portmap_result_t r;
  TU_QP_ERR(portmap_wait(pm, -1, &r), QP_ERR_NOT_SUPPORTED);
  TU_ASSERT_CONTAINS(qp_last_error(), "NOT_AUTHORIZED");
  TU_ASSERT_CONTAINS(qp_last_error(), gw);
  TU_ASSERT_CONTAINS(qp_last_error(), "127.0.0.1:4322");
  portmap_stop(pm);
  assert_int_equal(fake_count(&g, true), 0); /* nothing to delete */
  fake_stop(&g);
}

/* A gateway that never answers: the wait ends at the deadline, not later,
 * with QP_ERR_TIMEOUT naming the silence. */
static void test_silent_gateway_bounded(void **state) {
  (void)state;
  fake_gw_t g;
  fake_start(&g, FAKE_SILENT);
  char gw[UDP_ADDRSTRLEN];
  portmap_config_t cfg = pcp_config(&g, 4323, gw, sizeof(gw));
  cfg.deadline_ms = 150;
  portmap_t *pm = NULL;
  int64_t t0 = tu_now_ms();
  TU_QP_OK(portmap_start(&cfg, &pm));
  portmap_result_t r;
  assert_int_equal(portmap_wait(pm, 0, &r), PORTMAP_PENDING);
  TU_QP_ERR(portmap_wait(pm, -1, &r), QP_ERR_TIMEOUT);
  int64_t took = tu_now_ms() - t0;
  TU_ASSERT_CONTAINS(qp_last_error(), "PCP: no answer");
  assert_true(took >= cfg.deadline_ms);
  assert_true(took < WAIT_MS);
  /* Resent while waiting (first resend after 60 ms). */
  assert_true(fake_count(&g, false) >= 2);
  portmap_stop(pm);
  fake_stop(&g);
}

static void test_invalid_config(void **state) {
  (void)state;
  portmap_t *pm = NULL;
  portmap_config_t cfg = {.protocols = 0};
  udp_addr_from_ip("127.0.0.1", 4000, &cfg.local);
  TU_QP_ERR(portmap_start(&cfg, &pm), QP_ERR_INVALID);
  cfg.protocols = PORTMAP_PCP;
  udp_addr_from_ip("127.0.0.1", 0, &cfg.local);
  TU_QP_ERR(portmap_start(&cfg, &pm), QP_ERR_INVALID);
  udp_addr_from_ip("::1", 4000, &cfg.local);
  TU_QP_ERR(portmap_start(&cfg, &pm), QP_ERR_INVALID);
  assert_null(pm);
  portmap_stop(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codec_roundtrip),
      cmocka_unit_test(test_codec_rejects),
      cmocka_unit_test(test_grant_renew_delete),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_silent_gateway_bounded),
      cmocka_unit_test(test_invalid_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
