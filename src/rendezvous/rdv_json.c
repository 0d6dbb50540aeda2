/*
 * rdv_json.c: a bounded JSON writer and a strict JSON reader (RFC 8259),
 * written for rendezvous records. Neither allocates.
 */
#include "rendezvous/rdv_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */
/* ------------------------------------------------------------------------ */

void rdv_json_writer_init(rdv_json_writer *w, char *buf, size_t cap) {
  *w = (rdv_json_writer){.buf = buf, .cap = cap, .overflow = cap == 0};
  if (cap > 0)
    buf[0] = '\0';
}

static void append(rdv_json_writer *w, const char *s, size_t n) {
  if (w->overflow || n >= w->cap - w->len) {
    w->overflow = true;
    return;
  }
  memcpy(w->buf + w->len, s, n);
  w->len += n;
  w->buf[w->len] = '\0';
}

/* Every value and name is preceded by a comma when it is not the first. */
static void separate(rdv_json_writer *w) {
  if (w->need_comma)
    append(w, ",", 1);
  w->need_comma = true;
}

void rdv_json_begin_object(rdv_json_writer *w) {
  separate(w);
  append(w, "{", 1);
  w->need_comma = false;
}

void rdv_json_end_object(rdv_json_writer *w) {
  append(w, "}", 1);
  w->need_comma = true;
}

void rdv_json_begin_array(rdv_json_writer *w) {
  separate(w);
  append(w, "[", 1);
  w->need_comma = false;
}

void rdv_json_end_array(rdv_json_writer *w) {
  append(w, "]", 1);
  w->need_comma = true;
}

static void write_escaped(rdv_json_writer *w, const char *s) {
  append(w, "\"", 1);
  for (const char *p = s; *p != '\0' && !w->overflow; p++) {
    unsigned char c = (unsigned char)*p;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      append(w, esc, 2);
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof(esc), "\\u%04x", c);
      append(w, esc, 6);
    } else {
      append(w, p, 1); /* UTF-8 passes through unchanged */
    }
  }
  append(w, "\"", 1);
}

void rdv_json_name(rdv_json_writer *w, const char *name) {
  separate(w);
  write_escaped(w, name);
  append(w, ":", 1);
  w->need_comma = false;
}

void rdv_json_string(rdv_json_writer *w, const char *s) {
  separate(w);
  write_escaped(w, s);
}

void rdv_json_uint(rdv_json_writer *w, uint64_t v) {
  char num[24];
  int n = snprintf(num, sizeof(num), "%" PRIu64, v);
  separate(w);
  append(w, num, (size_t)n);
}

void rdv_json_int(rdv_json_writer *w, int64_t v) {
  char num[24];
  int n = snprintf(num, sizeof(num), "%" PRId64, v);
  separate(w);
  append(w, num, (size_t)n);
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                    */
/* ------------------------------------------------------------------------ */

void rdv_json_reader_init(rdv_json_reader *r, const char *text, size_t len) {
  *r = (rdv_json_reader){.start = text, .p = text, .end = text + len};
}

int rdv_json_fail(const rdv_json_reader *r, const char *what,
                  const char *problem) {
  return err_fail(QP_ERR_PROTOCOL,
                 "malformed rendezvous record: %s %s (at byte %zu)", what,
                 problem, (size_t)(r->p - r->start));
}

static void skip_ws(rdv_json_reader *r) {
  while (r->p < r->end &&
         (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
    r->p++;
}

/* The next byte after whitespace, or -1 at the end. */
static int peek(rdv_json_reader *r) {
  skip_ws(r);
  return r->p < r->end ? (unsigned char)*r->p : -1;
}

static int expect(rdv_json_reader *r, const char *what, char c) {
  if (peek(r) != c) {
    char problem[32];
    snprintf(problem, sizeof(problem), "expects '%c' here", c);
    return rdv_json_fail(r, what, problem);
  }
  r->p++;
  return 0;
}

/* Length of the well-formed UTF-8 sequence at s (2 to 4 bytes), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t avail) {
  size_t n;
  uint32_t cp, min;
  if (s[0] >= 0xc2 && s[0] <= 0xdf) {
    n = 2, cp = s[0] & 0x1f, min = 0x80;
  } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
    n = 3, cp = s[0] & 0x0f, min = 0x800;
  } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
    n = 4, cp = s[0] & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (avail < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
  return cp < min || cp > 0x10ffff || surrogate ? 0 : n;
}

static size_t utf8_encode(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xc0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xe0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  out[0] = (char)(0xf0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  out[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/* Four hex digits after "\u" (r->p on the first digit). */
static bool read_hex4(rdv_json_reader *r, uint32_t *out) {
  if (r->end - r->p < 4)
    return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = r->p[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0)
      return false;
    v = (v << 4) | (uint32_t)d;
  }
  r->p += 4;
  *out = v;
  return true;
}

/* "\uXXXX", or a surrogate pair "\uD8xx\uDCxx", into one code point. */
static int read_unicode_escape(rdv_json_reader *r, const char *what,
                               uint32_t *cp) {
  uint32_t lo;
  if (!read_hex4(r, cp))
    return rdv_json_fail(r, what, "has a bad \\u escape");
  if (*cp >= 0xdc00 && *cp <= 0xdfff)
    return rdv_json_fail(r, what, "has a lone low surrogate");
  if (*cp >= 0xd800 && *cp <= 0xdbff) {
    if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
      return rdv_json_fail(r, what, "has a lone high surrogate");
    r->p += 2;
    if (!read_hex4(r, &lo) || lo < 0xdc00 || lo > 0xdfff)
      return rdv_json_fail(r, what, "has a bad surrogate pair");
    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
  }
  if (*cp == 0)
    return rdv_json_fail(r, what, "contains U+0000");
  return 0;
}

/* One escape after the backslash into bytes (1 to 4). */
static int read_escape(rdv_json_reader *r, const char *what, char *bytes,
                       size_t *n) {
  static const char from[] = "\"\\/bfnrt";
  static const char to[] = "\"\\/\b\f\n\r\t";
  if (r->p >= r->end)
    return rdv_json_fail(r, what, "ends inside an escape");
  char c = *r->p++;
  if (c == 'u') {
    uint32_t cp = 0;
    int rc = read_unicode_escape(r, what, &cp);
    if (rc < 0)
      return rc;
    *n = utf8_encode(cp, bytes);
    return 0;
  }
  const char *hit = c != '\0' ? strchr(from, c) : NULL;
  if (hit == NULL)
    return rdv_json_fail(r, what, "has an unknown escape");
  bytes[0] = to[hit - from];
  *n = 1;
  return 0;
}

/* One character of a string body (raw or escaped) into bytes. */
static int read_char(rdv_json_reader *r, const char *what, char *bytes,
                     size_t *n) {
  unsigned char c = (unsigned char)*r->p;
  if (c == '\\') {
    r->p++;
    return read_escape(r, what, bytes, n);
  }
  if (c < 0x20)
    return rdv_json_fail(r, what, "contains a raw control character");
  *n = c < 0x80 ? 1
                : utf8_sequence((const unsigned char *)r->p,
                                (size_t)(r->end - r->p));
  if (*n == 0)
    return rdv_json_fail(r, what, "is not valid UTF-8");
  memcpy(bytes, r->p, *n);
  r->p += *n;
  return 0;
}

/* Read a string; out NULL discards it (cap then unused). */
static int read_string(rdv_json_reader *r, const char *what, char *out,
                       size_t cap) {
  if (peek(r) != '"')
    return rdv_json_fail(r, what, "must be a string");
  r->p++;
  size_t len = 0;
  while (r->p < r->end && *r->p != '"') {
    char bytes[4];
    size_t n;
    int rc = read_char(r, what, bytes, &n);
    if (rc < 0)
      return rc;
    if (out != NULL && n >= cap - len) {
      char problem[48];
      snprintf(problem, sizeof(problem), "is longer than %zu bytes", cap - 1);
      return rdv_json_fail(r, what, problem);
    }
    if (out != NULL)
      memcpy(out + len, bytes, n);
    len += n;
  }
  if (r->p >= r->end)
    return rdv_json_fail(r, what, "has no closing quote");
  r->p++;
  if (out != NULL)
    out[len] = '\0';
  return 0;
}

int rdv_json_read_string(rdv_json_reader *r, const char *what, char *out,
                         size_t cap) {
  return read_string(r, what, out, cap);
}

static bool is_digit(const rdv_json_reader *r) {
  return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

static void skip_digits(rdv_json_reader *r) {
  while (is_digit(r))
    r->p++;
}

/* Scan a number per RFC 8259; *integer tells whether it had neither a
 * fraction nor an exponent. Leaves r->p after it. */
static int scan_number(rdv_json_reader *r, const char *what, bool *integer) {
  if (r->p < r->end && *r->p == '-')
    r->p++;
  if (!is_digit(r))
    return rdv_json_fail(r, what, "is not a valid value");
  if (*r->p == '0')
    r->p++;
  else
    skip_digits(r);
  *integer = true;
  if (r->p < r->end && *r->p == '.') {
    r->p++;
    if (!is_digit(r))
      return rdv_json_fail(r, what, "has a bad fraction");
    skip_digits(r);
    *integer = false;
  }
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    r->p++;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
      r->p++;
    if (!is_digit(r))
      return rdv_json_fail(r, what, "has a bad exponent");
    skip_digits(r);
    *integer = false;
  }
  if (is_digit(r))
    return rdv_json_fail(r, what, "has a leading zero");
  return 0;
}

static int range_error(rdv_json_reader *r, const char *what, int64_t min,
                       int64_t max) {
  char problem[80];
  snprintf(problem, sizeof(problem), "must be between %" PRId64 " and %" PRId64,
           min, max);
  return rdv_json_fail(r, what, problem);
}

int rdv_json_read_int(rdv_json_reader *r, const char *what, int64_t min,
                      int64_t max, int64_t *out) {
  int c = peek(r);
  if (c != '-' && !(c >= '0' && c <= '9'))
    return rdv_json_fail(r, what, "must be a number");
  const char *begin = r->p;
  bool integer;
  int rc = scan_number(r, what, &integer);
  if (rc < 0)
    return rc;
  if (!integer)
    return rdv_json_fail(r, what, "must be an integer");
  bool negative = *begin == '-';
  uint64_t mag = 0;
  for (const char *d = begin + negative; d < r->p; d++) {
    unsigned digit = (unsigned)(*d - '0');
    if (mag > (UINT64_MAX - digit) / 10)
      return range_error(r, what, min, max);
    mag = mag * 10 + digit;
  }
  /* -2^63 is the only magnitude that fits a negative int64 but not a
   * positive one. */
  if (mag > (uint64_t)INT64_MAX + negative)
    return range_error(r, what, min, max);
  int64_t v = !negative                        ? (int64_t)mag
              : mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN
                                               : -(int64_t)mag;
  if (v < min || v > max)
    return range_error(r, what, min, max);
  *out = v;
  return 0;
}

static int read_literal(rdv_json_reader *r, const char *what,
                        const char *word) {
  size_t n = strlen(word);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
    return rdv_json_fail(r, what, "is not valid JSON");
  r->p += n;
  return 0;
}

static void quote(const char *name, char *out) {
  snprintf(out, RDV_JSON_NAME_MAX + 3, "\"%s\"", name);
}

int rdv_json_skip_member(rdv_json_reader *r, const char *name) {
  char quoted[RDV_JSON_NAME_MAX + 3];
  quote(name, quoted);
  return rdv_json_skip_value(r, quoted);
}

static int skip_member(rdv_json_reader *r, const char *name, void *ctx) {
  (void)ctx;
  return rdv_json_skip_member(r, name);
}

static int skip_element(rdv_json_reader *r, size_t index, void *ctx) {
  (void)index;
  return rdv_json_skip_value(r, ctx);
}

int rdv_json_skip_value(rdv_json_reader *r, const char *what) {
  bool integer;
  switch (peek(r)) {
  case '{':
    return rdv_json_read_object(r, what, skip_member, NULL);
  case '[':
    return rdv_json_read_array(r, what, RDV_JSON_MAX_MEMBERS, skip_element,
                               (void *)what);
  case '"':
    return read_string(r, what, NULL, 0);
  case 't':
    return read_literal(r, what, "true");
  case 'f':
    return read_literal(r, what, "false");
  case 'n':
    return read_literal(r, what, "null");
  default:
    return scan_number(r, what, &integer);
  }
}

static int enter(rdv_json_reader *r, const char *what, char open) {
  int rc = expect(r, what, open);
  if (rc < 0)
    return rc;
  if (++r->depth > RDV_JSON_MAX_DEPTH)
    return rdv_json_fail(r, what, "is nested too deeply");
  return 0;
}

/* After an element: 1 if another follows (',' eaten), 0 at close (eaten). */
static int next_or_close(rdv_json_reader *r, const char *what, char close) {
  int c = peek(r);
  if (c == ',' || c == close)
    r->p++;
  if (c == ',')
    return 1;
  if (c == close) {
    r->depth--;
    return 0;
  }
  char problem[40];
  snprintf(problem, sizeof(problem), "expects ',' or '%c' here", close);
  return rdv_json_fail(r, what, problem);
}

int rdv_json_read_object(rdv_json_reader *r, const char *what,
                         rdv_json_member_cb on_member, void *ctx) {
  int rc = enter(r, what, '{');
  if (rc < 0)
    return rc;
  if (peek(r) == '}') {
    r->p++;
    r->depth--;
    return 0;
  }
  for (size_t count = 0; count < RDV_JSON_MAX_MEMBERS; count++) {
    char name[RDV_JSON_NAME_MAX + 1], quoted[RDV_JSON_NAME_MAX + 3];
    if ((rc = read_string(r, "a member name", name, sizeof(name))) < 0)
      return rc;
    quote(name, quoted);
    if ((rc = expect(r, quoted, ':')) < 0 || (rc = on_member(r, name, ctx)) < 0)
      return rc;
    if ((rc = next_or_close(r, what, '}')) <= 0)
      return rc;
  }
  return rdv_json_fail(r, what, "has too many members");
}

int rdv_json_read_array(rdv_json_reader *r, const char *what, size_t max,
                        rdv_json_element_cb on_element, void *ctx) {
  int rc = enter(r, what, '[');
  if (rc < 0)
    return rc;
  if (peek(r) == ']') {
    r->p++;
    r->depth--;
    return 0;
  }
  for (size_t index = 0; index < max; index++) {
    if ((rc = on_element(r, index, ctx)) < 0)
      return rc;
    if ((rc = next_or_close(r, what, ']')) <= 0)
      return rc;
  }
  char problem[48];
  snprintf(problem, sizeof(problem), "has more than %zu elements", max);
  return rdv_json_fail(r, what, problem);
}

int rdv_json_read_end(rdv_json_reader *r) {
  if (peek(r) != -1)
    return rdv_json_fail(r, "the record", "has text after its end");
  return 0;
}
