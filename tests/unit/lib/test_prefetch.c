#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>

#include "prefetch.h"

/* A fake page download: records the order jobs ran in, and can be held until the owner
 * says go, to prove the job runs while the owner works on the previous page. */
struct fake {
    int ran[16];
    int nran;
    sem_t go;   /* posted by the owner to let a held job finish */
    sem_t busy; /* posted by a job once it runs */
    int hold;   /* jobs with this id wait for go */
    int saw_cancel;
};

struct job {
    int id;
    int result;
};

static void fake_run(void *arg, void *ctx)
{
    struct job *j = arg;
    struct fake *f = ctx;
    sem_post(&f->busy);
    if (j->id == f->hold)
        sem_wait(&f->go);
    f->ran[f->nran++] = j->id;
    j->result = j->id * 10;
}

static struct fake *fake_new(void)
{
    static struct fake f;
    memset(&f, 0, sizeof f);
    sem_init(&f.go, 0, 0);
    sem_init(&f.busy, 0, 0);
    f.hold = -1;
    return &f;
}

static struct prefetch *prefetch_on(struct fake *f)
{
    char err[128];
    struct prefetch *p = prefetch_new(fake_run, f, err, sizeof err);
    assert_non_null(p);
    return p;
}

/* Starts job a held at its start: once this returns, a is running and waits for f->go. */
static struct prefetch *start_held(struct fake *f, struct job *a)
{
    struct prefetch *p = prefetch_on(f);
    f->hold = a->id;
    assert_int_equal(prefetch_start(p, a), 0);
    sem_wait(&f->busy); /* the download runs while the owner still works */
    return p;
}

static void pages_come_back_in_the_order_they_were_asked_for(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct prefetch *p = prefetch_on(f);
    struct job jobs[5];
    for (int i = 0; i < 5; i++) {
        jobs[i] = (struct job){.id = i + 1};
        assert_int_equal(prefetch_start(p, &jobs[i]), 0);
        struct job *got = prefetch_wait(p);
        assert_ptr_equal(got, &jobs[i]);
        assert_int_equal(got->result, (i + 1) * 10);
    }
    assert_int_equal(f->nran, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(f->ran[i], i + 1);
    assert_null(prefetch_wait(p)); /* nothing in flight */
    prefetch_destroy(p);
}

static void at_most_one_page_is_ahead(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct job a = {.id = 1}, b = {.id = 2};
    struct prefetch *p = start_held(f, &a);
    assert_true(prefetch_busy(p));
    assert_int_equal(prefetch_start(p, &b), -1); /* no second page ahead */
    assert_int_equal(f->nran, 0);
    sem_post(&f->go);
    assert_ptr_equal(prefetch_wait(p), &a);
    assert_false(prefetch_busy(p));
    assert_int_equal(prefetch_start(p, &b), 0);
    assert_ptr_equal(prefetch_wait(p), &b);
    assert_int_equal(f->nran, 2);
    prefetch_destroy(p);
}

static void cancel_stops_fetching_and_the_page_in_flight_is_taken(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct job a = {.id = 1}, b = {.id = 2};
    struct prefetch *p = start_held(f, &a);
    prefetch_cancel(p); /* the run failed while page 1 was on its way */
    assert_true(prefetch_cancelled(p));
    sem_post(&f->go);
    assert_ptr_equal(prefetch_wait(p), &a);
    assert_int_equal(prefetch_start(p, &b), -1); /* nothing more is fetched */
    assert_null(prefetch_wait(p));
    assert_int_equal(f->nran, 1);
    prefetch_destroy(p);
}

static void destroy_waits_for_a_page_in_flight(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct prefetch *p = prefetch_on(f);
    struct job a = {.id = 1};
    assert_int_equal(prefetch_start(p, &a), 0);
    prefetch_destroy(p); /* no leak, no use of a after this under the sanitizers */
    assert_int_equal(f->nran, 1);
    prefetch_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pages_come_back_in_the_order_they_were_asked_for),
        cmocka_unit_test(at_most_one_page_is_ahead),
        cmocka_unit_test(cancel_stops_fetching_and_the_page_in_flight_is_taken),
        cmocka_unit_test(destroy_waits_for_a_page_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
