/*
 * test_sha256.c: the CLI's SHA-256 (tools/sha256.c) against the examples of
 * FIPS 180-2 (appendix B) and the empty string, hashed at once and in
 * uneven pieces. Exit 0 on success, 1 with the failing case printed.
 */
#include "sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void hex(const uint8_t *d, char *out) {
  for (int i = 0; i < SHA256_DIGEST_SIZE; i++) {
    snprintf(out + 2 * i, 3, "%02x", d[i]);
  }
}

/* Hash msg (len bytes) `repeat` times, fed in pieces of `step` bytes. */
static void check(const char *what, const char *msg, size_t len, size_t repeat,
                  size_t step, const char *want) {
  sha256_ctx c;
  sha256_init(&c);
  for (size_t r = 0; r < repeat; r++) {
    for (size_t off = 0; off < len; off += step) {
      sha256_update(&c, msg + off, len - off < step ? len - off : step);
    }
  }
  uint8_t d[SHA256_DIGEST_SIZE];
  char got[2 * SHA256_DIGEST_SIZE + 1];
  sha256_final(&c, d);
  hex(d, got);
  if (strcmp(got, want) != 0) {
    fprintf(stderr, "FAIL %s (pieces of %zu): got %s, want %s\n", what, step,
            got, want);
    failures++;
  }
}

int main(void) {
  static const char abc448[] =
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  static const size_t steps[] = {1, 3, 63, 64, 65, 1000};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    check("\"abc\"", "abc", 3, 1, steps[i],
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check("empty string", "", 0, 1, steps[i],
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check("448-bit message", abc448, strlen(abc448), 1, steps[i],
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  }
  /* FIPS 180-2 B.3: one million 'a'. */
  char *a = malloc(1000);
  if (!a) {
    return 1;
  }
  memset(a, 'a', 1000);
  check("one million 'a'", a, 1000, 1000, 7,
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  free(a);
  if (failures == 0) {
    printf("sha256: all FIPS 180-2 examples match\n");
  }
  return failures ? 1 : 0;
}
