// SPDX-License-Identifier: MIT
/*
 * VDI farms under budgets (docs/SCHEDULER.md, "Budgets"): each shipped
 * vdi-* scenario in model mode (10 simulated seconds) and as VMs (2 s per
 * policy, the model's run of the same length beside), under its own
 * policy and the best-effort and fifo baselines.  Per run: the budget
 * holders' worst p99 and longest wait against their bounds, frames missed,
 * the batch tenants' shares and their spread, utilisation and scheduler
 * overhead; then every holder's own waits against its bounds.  Prints one
 * Markdown section for docs/BENCHMARKS.md; `vdi_perf --model` skips the
 * VMs.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define VM_SECONDS "2"

static const char *const scenarios[] = { "vdi-farm", "vdi-mixed", "vdi-noisy" };

static int sh(const char *cmd)
{
	int st = system(cmd);

	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double num(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_double(v) : -1;
}

static const char *str(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

static const char *opt(char *buf, size_t len, const char *f, double v)
{
	if (v < 0)
		return "n/a";
	snprintf(buf, len, f, v);
	return buf;
}

static json_object *runs(json_object *j, bool model_of_vm)
{
	return json_object_object_get(model_of_vm ? json_object_object_get(j, "model") : j,
				       "runs");
}

/* The batch group's shares, "a, b" and their (max - min) / mean. */
static double batch(json_object *run, char *buf, size_t len)
{
	json_object *t = json_object_object_get(run, "tenants");
	double lo = 2, hi = -1, sum = 0;
	size_t n = 0, off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < json_object_array_length(t); i++) {
		json_object *x = json_object_array_get_idx(t, i);
		double s = num(x, "share");

		if (strcmp(str(x, "group"), "batch") || s < 0)
			continue;
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%.1f%%",
					n ? ", " : "", s * 100);
		lo = fmin(lo, s);
		hi = fmax(hi, s);
		sum += s;
		n++;
	}
	return n && sum > 0 ? (hi - lo) / (sum / (double)n) : -1;
}

static void run_row(json_object *run, const char *mode)
{
	json_object *ov = json_object_object_get(run, "overall");
	json_object *e = json_object_array_get_idx(json_object_object_get(run, "engines"), 0);
	char b[6][32], shares[128];
	double spread = batch(run, shares, sizeof(shares));
	/* a run in which the engine never let go (vm fifo) recorded no waits */
	bool waited = num(e, "picks") > 1;

	printf("| %s | %s | %s | %s | %.0f | %s | %s | %.1f%% | %.0f | %s |\n",
	       str(run, "policy"), mode,
	       opt(b[0], 32, "%.2f", waited ? num(ov, "budget_wait_p99_ratio_max") : -1),
	       opt(b[1], 32, "%.2f", waited ? num(ov, "budget_wait_max_ratio_max") : -1),
	       num(ov, "frames_missed"), shares[0] ? shares : "n/a",
	       opt(b[2], 32, "%.2f%%", spread * 100),
	       num(e, "utilisation") * 100, num(e, "switches_per_s"),
	       opt(b[3], 32, "%.4f%%", num(json_object_object_get(e, "host"), "overhead") * 100));
}

static void holder_row(json_object *t, const char *policy, const char *mode)
{
	char b[32];

	printf("| %s | %.1f ms @ %.0f fps | %s | %s | %.0f / %.0f | %.0f / %.0f | %.0f | %s |\n",
	       str(t, "name"), num(t, "budget_us") / 1e3, num(t, "fps_limit"), policy, mode,
	       num(t, "budget_wait_p99_us"), num(t, "budget_wait_max_us"),
	       num(t, "wait_p99_bound_us"), num(t, "wait_bound_us"), num(t, "frames_missed"),
	       opt(b, sizeof(b), "%.0f", num(t, "budget_exhausted")));
}

/* Every holder under every policy, the model's rows then the vm's. */
static void holders(json_object *model, json_object *vm)
{
	json_object *mr = runs(model, false), *t0 = json_object_object_get(
		json_object_array_get_idx(mr, 0), "tenants");

	printf("\n| holder | budget | policy | mode | wait p99 / max µs | bound p99 / max µs "
	       "| frames missed | budget ran out |\n"
	       "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |\n");
	for (size_t i = 0; i < json_object_array_length(t0); i++) {
		if (num(json_object_array_get_idx(t0, i), "budget_us") <= 0)
			continue;
		for (size_t k = 0; k < json_object_array_length(mr); k++) {
			json_object *r = json_object_array_get_idx(mr, k);

			holder_row(json_object_array_get_idx(json_object_object_get(r, "tenants"), i),
				   str(r, "policy"), "model");
			if (!vm)
				continue;
			r = json_object_array_get_idx(runs(vm, false), k);
			holder_row(json_object_array_get_idx(json_object_object_get(r, "tenants"), i),
				   str(r, "policy"), "vm");
		}
	}
}

static void scenario(const char *bin, const char *dir, const char *name, bool vms)
{
	char cmd[1024], mpath[512], vpath[512];
	json_object *model, *vm = NULL;

	snprintf(mpath, sizeof(mpath), "%s/%s-model.json", dir, name);
	snprintf(vpath, sizeof(vpath), "%s/%s-vm.json", dir, name);
	snprintf(cmd, sizeof(cmd), "%s bench samples/scenarios/%s.json --model --json %s "
		 ">/dev/null 2>&1", bin, name, mpath);
	if (sh(cmd) > 1 || !(model = json_object_from_file(mpath))) {
		printf("\n### `%s`\n\nmodel run failed\n", name);
		return;
	}
	/* no daemon at DIR/none: bench starts its own, in a directory under DIR */
	snprintf(cmd, sizeof(cmd), "TMPDIR=%s %s --run-dir %s/none bench "
		 "samples/scenarios/%s.json --duration " VM_SECONDS " --json %s >/dev/null 2>&1",
		 dir, bin, dir, name, vpath);
	if (vms && sh(cmd) == 0)
		vm = json_object_from_file(vpath);
	printf("\n### `%s`\n\n%s\n\n", name, str(model, "description"));
	printf("`gpup bench samples/scenarios/%s.json --model` (10 s simulated)%s.\n\n", name,
	       vm ? "; vm: `gpup bench samples/scenarios/" : "");
	if (vm)
		printf("%s.json --duration " VM_SECONDS "`, %s s measured per policy with the "
		       "model's run of the same length beside (`model-2s`).\n\n", name,
		       VM_SECONDS);
	printf("| policy | mode | holders' p99 / (S + 0.1 ms), worst | holders' max / (2 S + L), "
	       "worst | frames missed | batch shares | batch spread | utilisation | "
	       "switches/s | sched overhead |\n"
	       "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
	for (size_t k = 0; k < json_object_array_length(runs(model, false)); k++) {
		run_row(json_object_array_get_idx(runs(model, false), k), "model");
		if (!vm)
			continue;
		run_row(json_object_array_get_idx(runs(vm, true), k), "model-2s");
		run_row(json_object_array_get_idx(runs(vm, false), k), "vm");
	}
	holders(model, vm);
	json_object_put(model);
	json_object_put(vm);
}

int main(int argc, char **argv)
{
	const char *bin = getenv("GPUP_BIN");
	bool vms = !(argc > 1 && strcmp(argv[1], "--model") == 0);
	char dir[] = "/tmp/gpup-vdi-perf-XXXXXX", cmd[128];

	printf("## VDI farms: budgets (latency guarantees)\n\n");
	if (!bin || !mkdtemp(dir)) {
		printf("Not run: needs GPUP_BIN (as `make bench` sets).\n");
		return 0;
	}
	vms &= access("/dev/kvm", R_OK | W_OK) == 0;
	printf("Each shipped VDI scenario under its policy and the best-effort and fifo "
	       "baselines (baselines ignore budgets: their rows count every wait). S is "
	       "the slice, L the longest stretch the engine could not cut in that run; "
	       "the guarantee is a wait within the budget of at most 2 S + L, with the "
	       "p99 at most S + 0.1 ms. Batch spread is (max - min) / mean of the batch "
	       "tenants' shares (target 1%%). The model's overhead is its scheduler calls' "
	       "host CPU time over simulated engine time; vm's is the engine thread's CPU "
	       "time outside the contexts over the engine time it gave (an upper bound).%s\n",
	       vms ? " vm rows: one VM per tenant on a daemon started for the run, on this "
		     "host's 2 shared cores." : " (vm mode not run.)");
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		scenario(bin, dir, scenarios[i], vms);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return sh(cmd) ? 1 : 0;
}
