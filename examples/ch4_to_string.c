/* ch4_to_string: a type-asserting stage. The book's generators work on
 * interface{} so that any value fits; a stage like toString then asserts the
 * type it expects. C has no interface{}: here the stream carries a small
 * tagged value (any_t) and to_string is a csp_pipe_map from any_t to
 * const char *, which ends the stream if a value is not a string (Go's
 * v.(string) would panic).
 *
 * Go original:
 *   toString := func(done <-chan interface{}, valueStream <-chan interface{}) <-chan string {
 *       stringStream := make(chan string)
 *       go func() {
 *           defer close(stringStream)
 *           for v := range valueStream {
 *               select {
 *               case <-done:
 *                   return
 *               case stringStream <- v.(string):
 *               }
 *           }
 *       }()
 *       return stringStream
 *   }
 *
 *   done := make(chan interface{})
 *   defer close(done)
 *
 *   var message string
 *   for token := range toString(done, take(done, repeat(done, "I", "am."), 5)) {
 *       message += token
 *   }
 *
 *   fmt.Printf("message: %s...", message)
 *
 * Output, as in the book: "message: Iam.Iam.I..." (the tokens are joined
 * without spaces; Go prints no newline, this program ends the line).
 */
#include <csp.h>
#include <csp/pipeline.h>
#include <stdio.h>
#include <string.h>

/* interface{} for this program: an int or a string */
typedef struct {
    enum { ANY_INT, ANY_STRING } kind;
    union {
        long        i;
        const char *s;
    } u;
} any_t;

static int to_string(void *arg, const void *in, void *out)
{
    (void)arg;
    const any_t *v = in;
    if (v->kind != ANY_STRING)
        return CSP_PIPE_STOP;                     /* not a string: end the stream */
    *(const char **)out = v->u.s;                 /* v.(string) */
    return CSP_PIPE_EMIT;
}

static void main_task(void *arg)
{
    (void)arg;
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_t stages = CSP_WG_INIT;
    const csp_pipe_opts_t opts = { .flags = CSP_PIPE_CONSUME, .wg = &stages };

    const any_t words[] = { { ANY_STRING, { .s = "I" } }, { ANY_STRING, { .s = "am." } } };
    csp_chan_t *tokens = csp_pipe_map(
        done, csp_pipe_take(done, csp_pipe_repeat(done, words, 2, sizeof(any_t), &opts), 5, &opts),
        sizeof(const char *), to_string, NULL, &opts);
    if (!tokens) {
        fprintf(stderr, "pipeline: out of memory\n");
        csp_ctx_release(done);
        return;
    }
    char message[64] = "";
    const char *token;
    while (csp_chan_recv(tokens, &token) == 0)
        strncat(message, token, sizeof message - strlen(message) - 1);  /* message += token */
    printf("message: %s...\n", message);

    csp_chan_release(tokens);
    csp_ctx_cancel(done);                         /* defer close(done) */
    csp_wg_wait(&stages);
    csp_ctx_release(done);
}

int main(void)
{
    int err = csp_run(main_task, NULL, NULL);
    if (err) {
        fprintf(stderr, "csp_run: %s\n", csp_strerror(err));
        return 1;
    }
    return 0;
}
