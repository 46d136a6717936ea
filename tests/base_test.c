// SPDX-License-Identifier: MIT
/* gpup/base: sizes parsed and formatted. */
#include <criterion/criterion.h>
#include <errno.h>

#include "gpup/base/base.h"

Test(base, parse_size_suffixes)
{
	uint64_t v;

	cr_assert_eq(gpup_parse_size("4096", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(gpup_parse_size("64k", &v), 0);
	cr_assert_eq(v, 65536);
	cr_assert_eq(gpup_parse_size("512M", &v), 0);
	cr_assert_eq(v, 512ull << 20);
	cr_assert_eq(gpup_parse_size("8GiB", &v), 0);
	cr_assert_eq(v, 8ull << 30);
	cr_assert_eq(gpup_parse_size("2tb", &v), 0);
	cr_assert_eq(v, 2ull << 40);
}

Test(base, parse_size_rejects_junk)
{
	uint64_t v = 7;
	const char *bad[] = { "", "G", "-1", "1X", "1GG", "1 G", "0x10", "1Gi" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		cr_assert_eq(gpup_parse_size(bad[i], &v), -1, "%s", bad[i]);
		cr_assert_eq(errno, EINVAL, "%s", bad[i]);
	}
	cr_assert_eq(gpup_parse_size("99999999999T", &v), -1);
	cr_assert_eq(errno, ERANGE);
	cr_assert_eq(v, 7, "failed parses leave the output alone");
}

Test(base, format_size)
{
	char b[32];

	cr_assert_str_eq(gpup_format_size(8ull << 30, b, sizeof(b)), "8 GiB");
	cr_assert_str_eq(gpup_format_size(1536ull << 20, b, sizeof(b)), "1536 MiB");
	cr_assert_str_eq(gpup_format_size(1000, b, sizeof(b)), "1000 B");
}
