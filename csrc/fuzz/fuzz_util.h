/*
 * fuzz_util.h -- what the libFuzzer targets share: the parsers take paths,
 * so each input goes into an anonymous in-memory file (memfd) and is opened
 * by its /proc/self/fd path. Each target defines _GNU_SOURCE (memfd_create)
 * before its first include.
 */
#ifndef GLOW_FUZZ_UTIL_H
#define GLOW_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* a memfd holding data[size], its path in path[64]; -1 on failure */
static inline int fuzz_file(const uint8_t *data, size_t size, char path[64]) {
  int fd = memfd_create("glow-fuzz", 0);
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < size) {
    ssize_t k = write(fd, data + off, size - off);
    if (k <= 0) {
      close(fd);
      return -1;
    }
    off += (size_t)k;
  }
  snprintf(path, 64, "/proc/self/fd/%d", fd);
  return fd;
}

#endif
