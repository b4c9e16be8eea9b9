/* ch5_error_propagation: "Concurrency in Go", chapter 5, Error Propagation.
 *
 * Three modules: "lowlevel" wraps the raw OS error of stat() in its own
 * error kind (LowLevelErr); "intermediate" runs a job whose binary does not
 * exist; main is the user-facing part. Every error records what happened
 * (code, message), when and where (UTC time, task, stack trace) and a log id.
 * main logs the whole error under its log id and shows the user one line
 * quoting that id: the error's own message when it is well-formed (of the
 * intermediate module's kind), or a bland "unexpected issue" otherwise: an
 * error that escaped a module without being wrapped in that module's kind is
 * a bug.
 *
 * The book runs two versions of the intermediate module, as two programs:
 * the first passes the low-level error on unwrapped (a bug, so the user gets
 * the bland message); the second wraps it. Here both run in one process, so
 * their log ids (taken from the errors, increasing) are 1 and 2.
 *
 * Where the book logs Go's %#v of the error, this logs csp_error_fprint's
 * detailed form (every layer: code, message, UTC time, task) to stdout, and
 * the long form, which adds each layer's stack trace, to stderr.
 *
 * Go original (abridged):
 *   type MyError struct { Inner error; Message string; StackTrace string; Misc map[string]interface{} }
 *   func wrapError(err error, messagef string, msgArgs ...interface{}) MyError {...}
 *
 *   type LowLevelErr struct { error }
 *   func isGloballyExec(path string) (bool, error) {
 *       info, err := os.Stat(path)
 *       if err != nil {
 *           return false, LowLevelErr{(wrapError(err, err.Error()))}
 *       }
 *       return info.Mode().Perm()&0100 == 0100, nil
 *   }
 *
 *   type IntermediateErr struct { error }
 *   func runJob(id string) error {
 *       const jobBinPath = "/bad/job/binary"
 *       isExecutable, err := isGloballyExec(jobBinPath)
 *       if err != nil {
 *           return err                        // version 1
 *           return IntermediateErr{wrapError(err,
 *               "cannot run job %q: requisite binaries not available", id)}  // version 2
 *       } else if isExecutable == false {
 *           return wrapError(nil, "job binary is not executable")
 *       }
 *       return exec.Command(jobBinPath, "--id="+id).Run()
 *   }
 *
 *   func handleError(key int, err error, message string) {
 *       log.SetPrefix(fmt.Sprintf("[logID: %v]: ", key))
 *       log.Printf("%#v", err)
 *       fmt.Printf("[%v] %v", key, message)
 *   }
 *
 *   func main() {
 *       log.SetOutput(os.Stdout)
 *       log.SetFlags(log.Ltime|log.LUTC)
 *       err := runJob("1")
 *       if err != nil {
 *           msg := "There was an unexpected issue; please report this as a bug."
 *           if _, ok := err.(IntermediateErr); ok {
 *               msg = err.Error()
 *           }
 *           handleError(1, err, msg)
 *       }
 *   }
 */
#define _GNU_SOURCE
#include <csp.h>

#include <errno.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

/* Error kinds: the book's error types become codes (positive: libcsp's own
 * codes are negative). */
enum {
    ERR_OS           = 1,   /* a raw error from the OS (Go's *os.PathError) */
    ERR_MYERROR      = 2,   /* a bare wrapError(nil, ...): no module's kind */
    ERR_LOWLEVEL     = 100, /* LowLevelErr */
    ERR_INTERMEDIATE = 200, /* IntermediateErr */
};

/* ---- "lowlevel" module ---- */

/* Sets *executable to whether path's owner may execute it. NULL, or a
 * LowLevelErr (the caller owns it). */
static csp_error_t *is_globally_exec(const char *path, bool *executable)
{
    struct stat info;
    if (stat(path, &info) != 0) {
        int e = errno;
        csp_error_t *raw = csp_error_new(ERR_OS, "stat %s: %s", path, strerror(e));
        /* LowLevelErr{wrapError(err, err.Error())}: the message is fine as
         * it is. The wrapper takes over raw. */
        return csp_error_wrap(raw, ERR_LOWLEVEL, "%s", csp_error_message(raw));
    }
    *executable = (info.st_mode & 0100) == 0100;
    return NULL;
}

/* ---- "intermediate" module ---- */

/* exec.Command(path, "--id="+id).Run(): raw errors, as in the book. */
static csp_error_t *run_binary(const char *path, const char *id)
{
    char arg[64];
    snprintf(arg, sizeof arg, "--id=%s", id);
    char *argv[] = { (char *)path, arg, NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, path, NULL, NULL, argv, environ);
    if (rc != 0)
        return csp_error_new(ERR_OS, "fork/exec %s: %s", path, strerror(rc));
    /* Blocks this worker thread while the job runs (the I/O issue brings
     * csp_blocking() for this). */
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return csp_error_new(ERR_OS, "wait: %m");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return csp_error_new(ERR_OS, "exit status %d",
                             WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return NULL;
}

/* Version 1: passes lowlevel's error on as it is. */
static csp_error_t *run_job_v1(const char *id)
{
    const char *job_bin_path = "/bad/job/binary";
    bool executable = false;
    csp_error_t *err = is_globally_exec(job_bin_path, &executable);
    if (err != NULL)
        return err; /* not wrapped in our kind: this is the bug */
    if (!executable)
        return csp_error_new(ERR_MYERROR, "job binary is not executable");
    return run_binary(job_bin_path, id);
}

/* Version 2: wraps it in the intermediate module's kind, with a message
 * crafted for the user (hiding the low-level details). */
static csp_error_t *run_job_v2(const char *id)
{
    const char *job_bin_path = "/bad/job/binary";
    bool executable = false;
    csp_error_t *err = is_globally_exec(job_bin_path, &executable);
    if (err != NULL)
        return csp_error_wrap(err, ERR_INTERMEDIATE,
                              "cannot run job \"%s\": requisite binaries not available", id);
    if (!executable)
        return csp_error_new(ERR_MYERROR,
                             "cannot run job \"%s\": requisite binaries are not executable", id);
    return run_binary(job_bin_path, id);
}

/* ---- main: the user-facing part ---- */

/* Logs err in full under its log id, and shows the user message with it. */
static void handle_error(const csp_error_t *err, const char *message)
{
    unsigned long long key = (unsigned long long)csp_error_log_id(err);
    csp_error_fprint(stdout, err, CSP_ERROR_DETAILED); /* the log */
    csp_error_fprint(stderr, err, CSP_ERROR_LONG);     /* ... with the stack traces */
    printf("[%llu] %s\n", key, message);
}

static void report(csp_error_t *err)
{
    const char *msg = "There was an unexpected issue; please report this as a bug.";
    if (csp_error_code(err) == ERR_INTERMEDIATE) /* err.(IntermediateErr) */
        msg = csp_error_message(err);
    handle_error(err, msg);
    csp_error_release(err);
}

static void main_task(void *arg)
{
    (void)arg;
    printf("== version 1: the intermediate module passes lowlevel's error on\n");
    csp_error_t *err = run_job_v1("1");
    if (err != NULL)
        report(err);
    printf("== version 2: it wraps the error in its own kind\n");
    err = run_job_v2("1");
    if (err != NULL)
        report(err);
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
