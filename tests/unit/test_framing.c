/* ctest: labels=unit */
/* The message framing parser: any split of the stream gives the same whole
 * messages, 0-byte messages included, and a half message is kept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "transport/framing.h"
#include "tu.h"

#define MAX_MSGS 16

typedef struct got {
  uint8_t *data[MAX_MSGS];
  size_t len[MAX_MSGS];
  int count;
} got_t;

static void collect(void *ctx, uint8_t *data, size_t len) {
  got_t *g = ctx;
  assert_true(g->count < MAX_MSGS);
  assert_non_null(data);
  g->data[g->count] = data;
  g->len[g->count++] = len;
}

static void got_free(got_t *g) {
  for (int i = 0; i < g->count; i++)
    free(g->data[i]);
  g->count = 0;
}

/* Stream: messages of 0, 1, 300 and 5 bytes. */
static size_t build_stream(uint8_t *out, const size_t *sizes, int n) {
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    framing_header_write(out + off, (uint32_t)sizes[i]);
    off += FRAMING_HEADER_LEN;
    tu_fill_pattern(out + off, sizes[i], (uint32_t)i);
    off += sizes[i];
  }
  return off;
}

static void every_two_way_split_gives_the_same_messages(void **state) {
  (void)state;
  const size_t sizes[] = {0, 1, 300, 5};
  uint8_t stream[512];
  size_t total = build_stream(stream, sizes, 4);
  for (size_t cut = 0; cut <= total; cut++) {
    framing_parser_t p;
    framing_parser_init(&p, QP_MAX_MESSAGE_SIZE);
    got_t g = {0};
    assert_int_equal(framing_consume(&p, stream, cut, collect, &g), 0);
    assert_int_equal(framing_consume(&p, stream + cut, total - cut, collect, &g), 0);
    assert_int_equal(g.count, 4);
    assert_false(framing_partial(&p));
    for (int i = 0; i < 4; i++) {
      uint8_t want[300];
      tu_fill_pattern(want, sizes[i], (uint32_t)i);
      assert_int_equal(g.len[i], sizes[i]);
      assert_memory_equal(g.data[i], want, sizes[i]);
    }
    got_free(&g);
    framing_parser_cleanup(&p);
  }
}

static void byte_by_byte_and_half_message_kept(void **state) {
  (void)state;
  const size_t sizes[] = {300};
  uint8_t stream[400];
  size_t total = build_stream(stream, sizes, 1);
  framing_parser_t p;
  framing_parser_init(&p, QP_MAX_MESSAGE_SIZE);
  got_t g = {0};
  for (size_t i = 0; i + 1 < total; i++) {
    assert_int_equal(framing_consume(&p, stream + i, 1, collect, &g), 0);
    assert_int_equal(g.count, 0);
    assert_true(framing_partial(&p));
  }
  assert_int_equal(framing_consume(&p, stream + total - 1, 1, collect, &g), 0);
  assert_int_equal(g.count, 1);
  assert_int_equal(g.len[0], 300);
  got_free(&g);
  /* A parser dropped with half a message frees it (checked by ASan). */
  assert_int_equal(framing_consume(&p, stream, 100, collect, &g), 0);
  framing_parser_cleanup(&p);
}

/* A prefix above the limit is refused before anything is allocated, and the
 * error names both numbers. A limit equal to the length is accepted. */
static void longer_than_the_limit_is_a_protocol_error(void **state) {
  (void)state;
  uint8_t hdr[FRAMING_HEADER_LEN];
  framing_header_write(hdr, 0xFFFFFFFFu);
  framing_parser_t p;
  framing_parser_init(&p, 1000);
  got_t g = {0};
  assert_int_equal(framing_consume(&p, hdr, sizeof(hdr), collect, &g),
                   QP_ERR_PROTOCOL);
  TU_ASSERT_CONTAINS(qp_last_error(), "4294967295");
  TU_ASSERT_CONTAINS(qp_last_error(), "1000");
  assert_int_equal(framing_held(&p), 0);
  framing_parser_cleanup(&p);

  uint8_t exact[FRAMING_HEADER_LEN + 1000];
  framing_header_write(exact, 1000);
  memset(exact + FRAMING_HEADER_LEN, 7, 1000);
  framing_parser_init(&p, 1000);
  assert_int_equal(framing_consume(&p, exact, sizeof(exact), collect, &g), 0);
  assert_int_equal(g.count, 1);
  got_free(&g);
  framing_parser_cleanup(&p);
}

/* The buffer follows the bytes that arrived, not the announced length. */
static void buffer_grows_with_the_bytes_received(void **state) {
  (void)state;
  const size_t announced = 100u << 20; /* 100 MiB */
  uint8_t hdr[FRAMING_HEADER_LEN];
  framing_header_write(hdr, (uint32_t)announced);
  framing_parser_t p;
  framing_parser_init(&p, QP_MAX_MESSAGE_SIZE);
  got_t g = {0};
  assert_int_equal(framing_consume(&p, hdr, sizeof(hdr), collect, &g), 0);
  assert_int_equal(framing_held(&p), 0);
  static uint8_t chunk[4096];
  assert_int_equal(framing_consume(&p, chunk, 10, collect, &g), 0);
  assert_true(framing_held(&p) <= FRAMING_FIRST_CHUNK);
  size_t fed = 10;
  while (fed < (1u << 20)) {
    assert_int_equal(framing_consume(&p, chunk, sizeof(chunk), collect, &g), 0);
    fed += sizeof(chunk);
  }
  assert_true(framing_held(&p) >= fed);
  assert_true(framing_held(&p) <= 2 * fed);
  assert_int_equal(g.count, 0);
  framing_parser_cleanup(&p);
  assert_int_equal(framing_held(&p), 0);
}

static void header_is_big_endian(void **state) {
  (void)state;
  uint8_t h[4];
  framing_header_write(h, 0x01020304u);
  const uint8_t want[4] = {1, 2, 3, 4};
  assert_memory_equal(h, want, 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_two_way_split_gives_the_same_messages),
      cmocka_unit_test(byte_by_byte_and_half_message_kept),
      cmocka_unit_test(header_is_big_endian),
      cmocka_unit_test(longer_than_the_limit_is_a_protocol_error),
      cmocka_unit_test(buffer_grows_with_the_bytes_received),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
