/* ch4_context_value: request-scoped data in a context. ProcessRequest
 * stores the user ID and the auth token in the context; HandleResponse,
 * further down the call graph, reads them back by key.
 *
 * As the book recommends, the keys are private to this file so no other
 * package can collide with them (Go: an unexported key type; here: the
 * addresses of two static objects, since keys compare by pointer), and
 * typed accessors hide the lookups. The context owns copies of the values
 * and frees them when its last reference goes.
 *
 * Go original:
 *   func main() {
 *       ProcessRequest("jane", "abc123")
 *   }
 *   func ProcessRequest(userID, authToken string) {
 *       ctx := context.WithValue(context.Background(), "userID", userID)
 *       ctx = context.WithValue(ctx, "authToken", authToken)
 *       HandleResponse(ctx)
 *   }
 *   func HandleResponse(ctx context.Context) {
 *       fmt.Printf(
 *           "handling response for %v (%v)",
 *           ctx.Value("userID"),
 *           ctx.Value("authToken"),
 *       )
 *   }
 */
#include <csp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys: only their addresses matter. */
static char ctx_user_id, ctx_auth_token;

static const char *user_id(csp_ctx_t *ctx) { return csp_ctx_value(ctx, &ctx_user_id); }
static const char *auth_token(csp_ctx_t *ctx) { return csp_ctx_value(ctx, &ctx_auth_token); }

static void handle_response(csp_ctx_t *ctx)
{
    printf("handling response for %s (%s)\n", user_id(ctx), auth_token(ctx));
}

/* A child of parent carrying a copy of s under key (freed with it). */
static csp_ctx_t *with_string(csp_ctx_t *parent, const void *key, const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    csp_ctx_t *ctx = csp_ctx_with_value(parent, key, copy, free);
    if (ctx == NULL)
        free(copy);                         /* not taken over on failure */
    return ctx;
}

static void process_request(const char *uid, const char *token)
{
    csp_ctx_t *with_user = with_string(csp_ctx_background(), &ctx_user_id, uid);
    csp_ctx_t *ctx = with_user ? with_string(with_user, &ctx_auth_token, token) : NULL;
    if (ctx == NULL)
        fprintf(stderr, "process_request: out of memory\n");
    else
        handle_response(ctx);
    csp_ctx_release(ctx);                   /* NULL: no-op */
    csp_ctx_release(with_user);             /* ctx kept it alive until now */
}

static void main_task(void *arg)
{
    (void)arg;
    process_request("jane", "abc123");
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
