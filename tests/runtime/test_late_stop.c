/* Late stopping on scripted score streams: each step of a greedy decode
 * says whether "})" is the top token, its log-probability, and the
 * log-probability of the token actually taken. The expected cuts and scores
 * are worked out by hand in the comments. */
#include "check.h"
#include "late_stop.h"

struct step {
    int close_on_top;
    double lp_close; /* when close_on_top */
    double lp_taken; /* the token sampled (the runner-up when "})" is banned) */
};

/* Runs the stream; returns how many steps ran before the write ended (the
 * step index that let "})" through, or n when the stream ran out, as at the
 * token limit). Positions are token counts. */
static int run(struct late_stop *ls, const struct step *s, int n)
{
    double sum = 0;
    for (int t = 0; t < n; t++) {
        if (s[t].close_on_top &&
            late_stop_offer(ls, (size_t)t, sum, t, s[t].lp_close) == LATE_STOP_END)
            return t;
        sum += s[t].lp_taken;
    }
    return n;
}

static void first_cut_wins(void)
{
    /* delay 2.
     * t0: a token, lp -1                             sum -1
     * t1: "})" on top (lp -0.5): cut 0 at 1, score (-1 - 0.5) / 2 = -0.75;
     *     banned, runner-up lp -2                    sum -3
     * t2: a token, lp -0.2                           sum -3.2
     * t3: "})" on top (lp -0.1): cut 1 at 3, score (-3.2 - 0.1) / 4 = -0.825;
     *     banned, runner-up lp -1                    sum -4.2
     * t4: "})" on top: 2 cuts, the best (cut 0) is 2 cuts old: end.
     * Result: cut at 1. */
    const struct step s[] = {
        {0, 0, -1.0}, {1, -0.5, -2.0}, {0, 0, -0.2}, {1, -0.1, -1.0}, {1, -0.3, -0.3},
    };
    struct late_stop ls;
    late_stop_init(&ls, 2);
    CHECK(run(&ls, s, 5) == 4);
    size_t at = 99;
    CHECK(late_stop_best(&ls, &at) == 1);
    CHECK(at == 1);
    CHECK(ls.n_cuts == 2);
    CHECK_NEAR(ls.best_score, -0.75, 1e-12);
}

static void later_cut_extends_the_wait(void)
{
    /* delay 2.
     * t0: "})" on top (lp -2): cut 0 at 0, score -2 / 1 = -2;    sum -0.5
     * t1: a token, lp -0.1                                        sum -0.6
     * t2: "})" on top (lp -0.2): cut 1 at 2, score -0.8 / 3 = -0.2667, the
     *     new best;                                               sum -1.6
     * t3: "})" on top (lp -3): 2 cuts but the best is the last: cut 2 at 3,
     *     score (-1.6 - 3) / 4 = -1.15;                           sum -2.6
     * t4: "})" on top: the best (cut 1) is now 2 cuts old: end.
     * Result: cut at 2. */
    const struct step s[] = {
        {1, -2.0, -0.5}, {0, 0, -0.1}, {1, -0.2, -1.0}, {1, -3.0, -1.0}, {1, -0.1, -0.1},
    };
    struct late_stop ls;
    late_stop_init(&ls, 2);
    CHECK(run(&ls, s, 5) == 4);
    size_t at = 99;
    CHECK(late_stop_best(&ls, &at) == 1 && at == 2);
    CHECK(ls.n_cuts == 3);
    CHECK_NEAR(ls.best_score, -0.8 / 3, 1e-12);
}

static void token_limit_keeps_the_best(void)
{
    /* delay 5 (the default): two cuts, then the stream ends (token limit).
     * t0: a token, lp -1                                          sum -1
     * t1: "})" on top (lp -1): cut 0 at 1, score -2 / 2 = -1;     sum -2
     * t2: "})" on top (lp -0.25): cut 1 at 2, score -2.25 / 3 = -0.75.
     * Result: cut at 2. */
    const struct step s[] = {{0, 0, -1.0}, {1, -1.0, -1.0}, {1, -0.25, -0.5}};
    struct late_stop ls;
    late_stop_init(&ls, LATE_STOP_DEFAULT_DELAY);
    CHECK(run(&ls, s, 3) == 3);
    size_t at = 99;
    CHECK(late_stop_best(&ls, &at) == 1 && at == 2);
    CHECK_NEAR(ls.best_score, -0.75, 1e-12);
    /* An equal score later keeps the first: (-3.5 - 0.25) / 5 = -0.75. */
    CHECK(late_stop_offer(&ls, 7, -3.5, 4, -0.25) == LATE_STOP_SUPPRESS);
    CHECK(late_stop_best(&ls, &at) == 1 && at == 2);
}

static void no_cut_keeps_everything(void)
{
    const struct step s[] = {{0, 0, -1.0}, {0, 0, -0.5}};
    struct late_stop ls;
    late_stop_init(&ls, 5);
    CHECK(run(&ls, s, 2) == 2);
    size_t at = 99;
    CHECK(late_stop_best(&ls, &at) == 0 && at == 99);
}

static void delay_zero_stops_at_once(void)
{
    const struct step s[] = {{0, 0, -1.0}, {1, -0.5, -2.0}, {0, 0, -1.0}};
    struct late_stop ls;
    late_stop_init(&ls, 0);
    CHECK(run(&ls, s, 3) == 1);
    size_t at;
    CHECK(late_stop_best(&ls, &at) == 0);
}

static void delay_one_waits_for_one_more(void)
{
    /* delay 1: the first "})" on top is recorded (cut at 0), the second
     * ends the write. */
    const struct step s[] = {{1, -0.5, -2.0}, {0, 0, -1.0}, {1, -0.1, -1.0}};
    struct late_stop ls;
    late_stop_init(&ls, 1);
    CHECK(run(&ls, s, 3) == 2);
    size_t at = 99;
    CHECK(late_stop_best(&ls, &at) == 1 && at == 0);
    CHECK_NEAR(ls.best_score, -0.5, 1e-12);
}

int main(void)
{
    first_cut_wins();
    later_cut_extends_the_wait();
    token_limit_keeps_the_best();
    no_cut_keeps_everything();
    delay_zero_stops_at_once();
    delay_one_waits_for_one_more();
    return check_report("test_late_stop");
}
