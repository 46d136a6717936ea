// SPDX-License-Identifier: MIT
/*
 * The benchmark's human outputs: a Markdown section (the scenario's policy
 * beside its baselines, the target checks, one row per tenant) and a chart
 * of each tenant's share of the engine over time, drawn by gnuplot: one
 * panel per policy, the baselines beside the scenario's, on one y axis
 * from 0, with the target shares and interactive tenants' missed frames.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "gpup/bench/bench.h"

/* A metric, or "n/a" when it could not be measured (< 0). */
static const char *fmt(char *buf, size_t len, const char *f, double v)
{
	if (v < 0)
		return "n/a";
	snprintf(buf, len, f, v);
	return buf;
}

static void comparison(FILE *f, const struct bench_run *runs, unsigned int nruns)
{
	char b[8][32];

	fprintf(f, "| policy | share error max | 1 s window error max | Jain mean "
		   "| Jain min | max lag ms | group spread | interactive p99 wait µs "
		   "| frames missed | utilisation | switches/s | sched overhead |\n");
	fprintf(f, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
		   "| ---: | ---: | ---: |\n");
	for (unsigned int i = 0; i < nruns; i++) {
		const struct bench_run *r = &runs[i];
		double util = 0, sw = 0, ovh = 0;

		for (unsigned int e = 0; e < r->nengines; e++) {
			util += r->engines[e].utilisation / r->nengines;
			sw += r->engines[e].switches_per_s;
			ovh = ovh > r->engines[e].overhead ? ovh : r->engines[e].overhead;
		}
		fprintf(f, "| %s%s | %s | %s | %s | %s | %.2f | %s | %s | %llu | "
			   "%.1f%% | %.0f | %.4f%% |\n",
			sched_policy_name(r->policy), r->baseline ? " (baseline)" : "",
			fmt(b[0], 32, "%.2f%%", r->share_error_max * 100),
			fmt(b[1], 32, "%.2f%%", r->window_share_error_max * 100),
			fmt(b[2], 32, "%.5f", r->jain_mean),
			fmt(b[3], 32, "%.5f", r->jain_min), r->lag_max_ms,
			fmt(b[4], 32, "%.2f%%", r->group_spread_max * 100),
			fmt(b[5], 32, "%.0f", r->wait_p99_max_us),
			(unsigned long long)r->frames_missed, util * 100, sw, ovh * 100);
	}
}

static void checks(FILE *f, const struct bench_run *runs, unsigned int nruns)
{
	if (!runs[0].nchecks)
		return;
	fprintf(f, "\nTargets (%s; baselines for comparison):\n\n| target | limit |",
		sched_policy_name(runs[0].policy));
	for (unsigned int r = 0; r < nruns; r++)
		fprintf(f, " %s |", sched_policy_name(runs[r].policy));
	fprintf(f, "\n| --- | ---: |");
	for (unsigned int r = 0; r < nruns; r++)
		fprintf(f, " ---: |");
	fprintf(f, "\n");
	for (unsigned int i = 0; i < runs[0].nchecks; i++) {
		fprintf(f, "| %s | %g |", runs[0].checks[i].name, runs[0].checks[i].limit);
		for (unsigned int r = 0; r < nruns; r++) {
			const struct bench_check *c = &runs[r].checks[i];

			fprintf(f, " %.6g %s |", c->value, c->pass ? "pass" : "**FAIL**");
		}
		fprintf(f, "\n");
	}
}

static void tenants(FILE *f, const struct bench_scenario *sc,
		    const struct bench_run *r)
{
	fprintf(f, "\nTenants under %s:\n\n", sched_policy_name(r->policy));
	fprintf(f, "| tenant | class | weight | target | share | error | jobs/s "
		   "| wait p50 µs | p99 µs | max µs | max lag ms | frames missed |\n");
	fprintf(f, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
		   "| ---: | ---: | ---: |\n");
	for (unsigned int i = 0; i < sc->ntenants; i++) {
		const struct bench_tenant_result *t = &r->tenants[i];

		fprintf(f, "| %s | %s | %u | %.4f | %.4f | %.2f%% | %.1f | %.0f | %.0f "
			   "| %.0f | %.2f | %llu/%llu |\n",
			sc->tenants[i].name, sched_class_name(sc->tenants[i].klass),
			sc->tenants[i].weight, t->target_share, t->share,
			t->share_error * 100, t->jobs_per_s, t->wait_p50_us,
			t->wait_p99_us, t->wait_max_us,
			t->max_lag_ms > 0 ? t->max_lag_ms : 0,
			(unsigned long long)t->frames_missed,
			(unsigned long long)t->frames);
	}
}

/* Budget holders under every run: the waits the guarantee covers against
 * its bounds (under baselines, which ignore budgets, every wait). */
static void budgets(FILE *f, const struct bench_scenario *sc, const struct bench_run *runs,
		    unsigned int nruns)
{
	bool any = false;

	for (unsigned int i = 0; i < sc->ntenants; i++)
		any |= sc->tenants[i].budget_us != 0;
	if (!any)
		return;
	fprintf(f, "\nBudget holders (waits within the budget; under baselines every "
		   "wait), against p99 <= slice + 0.1 ms and max <= 2 slices + the "
		   "longest non-preemptible stretch:\n\n");
	fprintf(f, "| tenant | budget | policy | wait p99 µs | p99 bound | max µs | max bound "
		   "| budget ran out | frames missed |\n");
	fprintf(f, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
	for (unsigned int i = 0; i < sc->ntenants; i++) {
		for (unsigned int k = 0; sc->tenants[i].budget_us && k < nruns; k++) {
			const struct bench_tenant_result *t = &runs[k].tenants[i];

			fprintf(f, "| %s | %.1f ms @ %u fps | %s | %.0f | %.0f | %.0f | %.0f "
				   "| %llu | %llu/%llu |\n", sc->tenants[i].name,
				sc->tenants[i].budget_us / 1e3, sc->tenants[i].fps_limit,
				sched_policy_name(runs[k].policy), t->budget_wait_p99_us,
				t->wait_p99_bound_us, t->budget_wait_max_us, t->wait_bound_us,
				(unsigned long long)t->budget_exhausted,
				(unsigned long long)t->frames_missed,
				(unsigned long long)t->frames);
		}
	}
}

void bench_write_markdown(FILE *f, const struct bench_scenario *sc, uint64_t seed,
			  const struct bench_run *runs, unsigned int nruns)
{
	fprintf(f, "### Scenario `%s` (model mode)\n\n", sc->name);
	if (sc->description[0])
		fprintf(f, "%s\n\n", sc->description);
	(void)seed;
	fprintf(f, "`%s`: %.1f s simulated, %u tenant(s), policy %s, slice %.2f ms.\n\n",
		bench_command_line(sc), sc->duration_ns / 1e9, sc->ntenants,
		sched_policy_name(sc->policy), runs[0].slice_ns / 1e6);
	comparison(f, runs, nruns);
	checks(f, runs, nruns);
	budgets(f, sc, runs, nruns);
	tenants(f, sc, &runs[0]);
}

/* ---- the chart ---- */

static const char *terminal_for(const char *out, unsigned int panels)
{
	static char term[64];
	size_t n = strlen(out);
	unsigned int h = 80 + 300 * panels;

	if (n > 4 && strcmp(out + n - 4, ".svg") == 0)
		snprintf(term, sizeof(term), "svg size 1000,%u dynamic", h);
	else if (n > 4 && strcmp(out + n - 4, ".png") == 0)
		snprintf(term, sizeof(term), "pngcairo size 1000,%u", h);
	else
		return NULL;
	return term;
}

int bench_plot_check(const char *out, char *err, size_t errlen)
{
	if (!terminal_for(out, 1)) {
		snprintf(err, errlen, "--plot %s: the name must end in .svg or .png", out);
		return -EINVAL;
	}
	if (strchr(out, '\'') || strchr(out, '\n')) {
		snprintf(err, errlen, "--plot: quotes and newlines are not allowed in the file "
			 "name");
		return -EINVAL;
	}
	return 0;
}

/* The same y range for every panel, from 0, so that they compare. */
static double y_max(const struct bench_scenario *sc, const struct bench_run *runs,
		    unsigned int nruns)
{
	double m = 0.05;

	for (unsigned int r = 0; r < nruns; r++)
		for (unsigned int i = 0; i < sc->ntenants; i++) {
			const struct bench_tenant_result *t = &runs[r].tenants[i];

			m = t->target_share > m ? t->target_share : m;
			for (unsigned int w = 0; w < runs[r].nwindows; w++)
				m = t->window_share[w] > m ? t->window_share[w] : m;
		}
	return m * 1.1 > 1 ? 1 : m * 1.1;
}

/* A panel's title: the policy, its role, and the frames interactive
 * tenants missed under it. */
static void panel_title(FILE *g, const struct bench_scenario *sc, const struct bench_run *run)
{
	bool measured = false;

	for (unsigned int i = 0; i < sc->ntenants; i++)
		measured |= run->tenants[i].share >= 0;
	fprintf(g, "set title \"%s (%s)%s", sched_policy_name(run->policy),
		run->baseline ? "baseline" : "the scenario's policy",
		measured ? "" : ", shares not measured (see docs/SCHEDULER.md)");
	for (unsigned int i = 0; i < sc->ntenants; i++)
		if (sc->tenants[i].klass == SCHED_CLASS_INTERACTIVE ||
		    sc->tenants[i].wl.kind == BENCH_WL_FRAMES)
			fprintf(g, ", %s: %llu of %llu frames missed", sc->tenants[i].name,
				(unsigned long long)run->tenants[i].frames_missed,
				(unsigned long long)run->tenants[i].frames);
	fprintf(g, "\" noenhanced\n");
}

static void panel(FILE *g, const struct bench_scenario *sc, const struct bench_run *run,
		  unsigned int k)
{
	bool first = true;

	fprintf(g, "$share%u << EOD\n", k);
	for (unsigned int w = 0; w < run->nwindows; w++) {
		fprintf(g, "%.3f", (w + 0.5) * BENCH_WINDOW_NS / 1e9);
		for (unsigned int i = 0; i < sc->ntenants; i++)
			fprintf(g, " %.5f", run->tenants[i].window_share[w]);
		fprintf(g, "\n");
	}
	fprintf(g, "EOD\n");
	panel_title(g, sc, run);
	fprintf(g, "plot ");
	for (unsigned int i = 0; i < sc->ntenants; i++) {
		fprintf(g, "%s$share%u using 1:%u with lines lt %u lw 1.5 title '%s'",
			first ? "" : ", ", k, i + 2, i % 8 + 1, sc->tenants[i].name);
		first = false;
	}
	for (unsigned int i = 0; i < sc->ntenants; i++)
		if (run->tenants[i].target_share >= 0)
			fprintf(g, ", %.5f with lines lt %u dt 2 notitle",
				run->tenants[i].target_share, i % 8 + 1);
	fprintf(g, "\n");
}

static void plot_script(FILE *g, const char *out, const char *term,
			const struct bench_scenario *sc, const struct bench_run *runs,
			unsigned int nruns, const char *source)
{
	fprintf(g, "set terminal %s\nset output '%s'\n", term, out);
	fprintf(g, "set multiplot layout %u,1 title \"%s: each tenant's share of the engine "
		   "per 100 ms window, from %s; dashed: target shares\" noenhanced\n",
		nruns, sc->name, source);
	fprintf(g, "set xlabel 'time (s)'\nset ylabel 'share of the engine'\n"
		   "set yrange [0:%.4f]\nset key outside right noenhanced\nset grid\n"
		   "set lmargin 10\nset rmargin 16\n", y_max(sc, runs, nruns));
	if (sc->ntenants > 16)
		fprintf(g, "unset key\n");
	for (unsigned int r = 0; r < nruns; r++)
		panel(g, sc, &runs[r], r);
	fprintf(g, "unset multiplot\n");
}

int bench_write_plot(const char *out, const struct bench_scenario *sc,
		     const struct bench_run *runs, unsigned int nruns, const char *source,
		     char *err, size_t errlen)
{
	const char *term;
	FILE *g;
	int st;

	if (bench_plot_check(out, err, errlen))
		return -EINVAL;
	term = terminal_for(out, nruns);
	g = popen("gnuplot", "w");
	if (!g) {
		snprintf(err, errlen, "cannot run gnuplot: %s", strerror(errno));
		return -errno;
	}
	plot_script(g, out, term, sc, runs, nruns, source);
	st = pclose(g);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, errlen, "gnuplot failed writing %s (is gnuplot-nox "
			 "installed? see scripts/deps.sh)", out);
		return -EIO;
	}
	return 0;
}
