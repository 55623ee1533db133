/*
 * main.c - mlc-api: the FastCGI master and its two pools of workers.
 *
 * The master opens two FastCGI unix sockets and forks a pool of workers
 * for each; every worker of a pool accepts on that pool's socket, and the
 * master respawns any worker that dies into the pool it came from:
 *
 *   fast  MLC_SOCKET       MLC_WORKERS (default: one per core)
 *   slow  MLC_SLOW_SOCKET  MLC_SLOW_WORKERS (default: four per core)
 *
 * nginx sends the routes whose time is set by a peer (uploads, whose body
 * arrives at the client's pace; predict, which waits for the model's
 * runtime and a data link's server; DELETE /deployment/{id}, which waits
 * for the spooler) to the slow socket and everything else to the fast one,
 * so that however many slow requests arrive, /health and the registry's
 * reads still find a free worker.  Both pools serve every route: the split
 * is nginx's (see conf/nginx/mlconnector-locations.conf.in).
 *
 * Each worker serves several connections: nginx keeps its connections to
 * the fast pool open between requests (see the connection loop below).
 *
 * On SIGTERM or SIGINT the master asks every worker to stop: a worker
 * waiting for work leaves at once, one serving a request finishes it
 * first.  Workers still alive after MLC_SHUTDOWN_TIMEOUT seconds are
 * killed.
 *
 * On SIGHUP the master reopens its log file (--log) and passes SIGHUP on to
 * every worker.  Workers take it only while they wait for work, so it never
 * interrupts a request: an idle worker reopens at once, a busy one when
 * its request is done.
 *
 * usage: mlc-api [-c conf/mlconnector.conf] [--log FILE] | --version
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <fcgiapp.h>
#include <mysql.h>

#include "auth.h"
#include "buildinfo.h"
#include "conf.h"
#include "db.h"
#include "dbtarget.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "routes.h"
#include "rowcache.h"

/* One pool: a socket and the workers accepting on it. */
struct pool {
	const char *name;
	char path[4096];
	int sock;
	struct stat own;	/* the socket file, to remove only our own at exit */
	int n;
	pid_t pids[MLC_MAX_WORKERS];
};

enum { FAST, SLOW, NPOOLS };

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t child_exited;
static volatile sig_atomic_t reopen_requested;

static void on_stop(int sig)
{
	stop_requested = 1;
}

static void on_reopen(int sig)
{
	reopen_requested = 1;
}

static void on_child(int sig)
{
	child_exited = 1;
}

static void set_handler(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocked ppoll() must return EINTR so that an
	 * idle worker notices the stop request. */
	sigaction(sig, &sa, NULL);
}

/* A worker takes the master's SIGHUP (log reopening) only while it waits
 * for work (ppoll, epoll_pwait), like stop signals: a signal arriving while libfcgi reads a request's
 * records would fail that read (it does not retry on EINTR) and drop the
 * request.  An idle worker reopens at once; a busy one after its request. */
static void take_reopen_request(void)
{
	if (reopen_requested) {
		reopen_requested = 0;
		mlc_log_reopen();
	}
}

/*
 * The connections one worker holds.  nginx keeps its connections to a pool
 * open between requests (upstream keepalive, fastcgi_keep_conn), so a
 * worker serves the requests of several connections, one request at a
 * time, and goes on accepting new connections while it waits: a worker is
 * never bound to one idle connection, so the idle connections one nginx
 * worker keeps cannot leave another's new connection waiting in the
 * listening socket's queue.  A worker closes a connection only when nginx
 * closed it (or sent garbage) or when it stops: never one nginx may be
 * about to send a request on.
 */
#define MAX_CONNS 64

struct conns {
	int sock;		/* the pool's listening socket (non-blocking) */
	int slow;
	FCGX_Request req[MAX_CONNS];	/* a slot is in use while its ipcFd >= 0 */
};

/* Close connection i.  libfcgi's own close lingers up to 2 s for the
 * peer's side; a connection closed by its peer, or dropped by a stopping
 * worker, needs no such wait. */
static void conn_close(struct conns *c, int i)
{
	close(c->req[i].ipcFd);
	c->req[i].ipcFd = -1;
	FCGX_Free(&c->req[i], 0);
}

/* Take one connection waiting on the listening socket into a free slot
 * (the caller knows there is one).  Other workers race for the same
 * connections: EAGAIN means one of them took it.  One at a time, and only
 * by a worker with nothing else to do: a connection taken waits for its
 * worker, while an idle worker could have served it. */
static void conns_accept(struct conns *c)
{
	int i, fd;

	do
		fd = accept4(c->sock, NULL, NULL, SOCK_CLOEXEC);
	while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			mlc_log("warn", NULL, "accept failed: %s", strerror(errno));
		return;
	}
	for (i = 0; c->req[i].ipcFd >= 0; i++)
		;
	FCGX_InitRequest(&c->req[i], c->sock, 0);
	c->req[i].ipcFd = fd;
	/* FCGX_Accept_r first finishes the "previous" request, closing
	 * its connection unless it was to be kept; each request then
	 * sets this from nginx's FCGI_KEEP_CONN flag. */
	c->req[i].keepConnection = 1;
	mlc_metrics_connection(c->slow);
}

/*
 * Wait, holding no connection, for one to accept.  Each worker waits on
 * its own epoll set, which holds the listening socket as an exclusive
 * waiter (EPOLLEXCLUSIVE): a new connection wakes one idle worker instead
 * of every one (poll wakes them all, and all but one find nothing to
 * accept; the slow pool, whose connections nginx does not keep, took a
 * new connection for every request and woke the whole pool for it).
 * Workers holding connections still poll the listening socket with them,
 * not exclusively.  0 when a connection may be waiting, -1 when
 * interrupted by a signal.
 */
static int wait_for_connection(int ep, const sigset_t *waiting)
{
	struct epoll_event ev;
	int rc = epoll_pwait(ep, &ev, 1, -1, waiting);

	take_reopen_request();
	if (rc < 0 && errno != EINTR)
		mlc_log("warn", NULL, "epoll_wait failed: %s", strerror(errno));
	return rc > 0 ? 0 : -1;
}

static int exclusive_waiter(int sock)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = sock };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, sock, &ev) < 0)
		mlc_die("epoll on the listening socket: %s", strerror(errno));
	return ep;
}

/* Serve the next request of connection i, which poll() found readable. */
static void conn_serve(struct conns *c, int i, struct mlc_db *db, CURL *curl)
{
	FCGX_Request *r = &c->req[i];
	struct mlc_req req;
	char byte;
	ssize_t n;

	/* nginx closing a kept connection makes it readable too: close ours
	 * without asking libfcgi, whose FCGX_Accept_r would go on to accept a
	 * new connection. */
	n = recv(r->ipcFd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		conn_close(c, i);
		return;
	}
	if (n < 0)
		return;
	/* A broken record makes libfcgi drop the connection and try the
	 * listening socket, which answers EAGAIN (the slot is free) or a
	 * connection of its own (served here). */
	if (FCGX_Accept_r(r) < 0)
		return;
	mlc_req_init(&req, r, db, curl);
	mlc_dispatch(&req);
	mlc_req_release(&req);
	/* A handler may answer without reading the whole body (an early 4xx),
	 * or before its closing record arrived.  On a kept connection the rest
	 * would be read as the next request, which is garbage, and the
	 * connection closed under nginx: read it to its end first.  nginx has
	 * buffered the body (MLC_MAX_BODY at most) before it sent the request,
	 * so this waits for no client.  A connection not kept (uploads, which
	 * nginx streams) is closed instead, unread. */
	if (r->keepConnection) {
		char scratch[16384];

		while (FCGX_GetStr(scratch, sizeof(scratch), r->in) > 0)
			;
	}
	/* Closes the connection (ipcFd -1: the slot is free) unless nginx
	 * asked to keep it. */
	FCGX_Finish_r(r);
}

/* Serve requests until asked to stop. */
static int worker_main(int sock, int slow)
{
	static struct conns c;
	struct pollfd pfd[MAX_CONNS + 1];
	int which[MAX_CONNS + 1];
	struct mlc_db *db = mlc_db_new();
	CURL *curl = curl_easy_init();
	const struct timespec no_wait = { 0, 0 };
	sigset_t waiting;
	int ep = exclusive_waiter(sock);
	int i, k, nfds, listen_at, rc, served, stopping;

	set_handler(SIGTERM, on_stop);
	set_handler(SIGINT, on_stop);
	set_handler(SIGCHLD, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	/* The master forked us with SIGTERM, SIGINT and SIGHUP blocked; they
	 * stay blocked while a request is read and served, so that no signal
	 * interrupts its reads and writes, and are taken only while it waits
	 * for work (ppoll, epoll_pwait). */
	reopen_requested = 0;
	set_handler(SIGHUP, on_reopen);
	sigprocmask(SIG_SETMASK, NULL, &waiting);
	sigdelset(&waiting, SIGTERM);
	sigdelset(&waiting, SIGINT);
	sigdelset(&waiting, SIGHUP);
	if (!curl)
		mlc_die("curl_easy_init failed");
	c.sock = sock;
	c.slow = slow;
	for (i = 0; i < MAX_CONNS; i++)
		c.req[i].ipcFd = -1;
	for (;;) {
		nfds = 0;
		for (i = 0; i < MAX_CONNS; i++) {
			if (c.req[i].ipcFd < 0)
				continue;
			pfd[nfds].fd = c.req[i].ipcFd;
			pfd[nfds].events = POLLIN;
			which[nfds++] = i;
		}
		listen_at = -1;
		if (!stop_requested && nfds < MAX_CONNS) {
			listen_at = nfds;
			pfd[nfds].fd = sock;
			pfd[nfds].events = POLLIN;
			which[nfds++] = -1;
		}
		if (stop_requested && !nfds)
			break;
		if (listen_at == 0) {
			if (wait_for_connection(ep, &waiting) == 0 && !stop_requested)
				conns_accept(&c);
			continue;
		}
		/* Stopping: serve what nginx has already sent, one round, then
		 * leave (under steady load there is always more). */
		stopping = stop_requested;
		rc = ppoll(pfd, (nfds_t)nfds, stopping ? &no_wait : NULL, &waiting);
		take_reopen_request();
		if (rc < 0) {
			if (errno != EINTR)
				mlc_log("warn", NULL, "poll failed: %s", strerror(errno));
			continue;
		}
		if (rc == 0 && stopping)
			break;
		/* The requests on our own connections first: no other worker
		 * can serve them.  A new connection only when none was ready. */
		served = 0;
		for (k = 0; k < nfds; k++) {
			if (pfd[k].revents && which[k] >= 0 && c.req[which[k]].ipcFd >= 0) {
				conn_serve(&c, which[k], db, curl);
				served = 1;
			}
		}
		if (!served && !stop_requested && listen_at >= 0 && pfd[listen_at].revents)
			conns_accept(&c);
		if (stopping)
			break;
	}
	for (i = 0; i < MAX_CONNS; i++)
		if (c.req[i].ipcFd >= 0)
			conn_close(&c, i);
	close(ep);
	mlc_db_free(db);
	mlc_rowcache_release();
	mlc_opcache_release();
	mlc_predict_cache_release();
	curl_easy_cleanup(curl);
	mysql_thread_end();
	curl_global_cleanup();
	mlc_config_release();
	return 0;
}

/* Fork a worker for the pool listening on sock; it closes the other
 * pools' sockets, which are not its own to accept on. */
static pid_t spawn_worker(const struct pool *pools, int sock)
{
	pid_t pid = fork();
	int i;

	if (pid < 0) {
		mlc_log("error", NULL, "fork failed: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		for (i = 0; i < NPOOLS; i++)
			if (pools[i].sock != sock && pools[i].sock > 0)
				close(pools[i].sock);
		exit(worker_main(sock, sock == pools[SLOW].sock));
	}
	return pid;
}

/*
 * Listen on path, mode 0660: only this user and the socket's group (nginx's
 * workers: MLC_SOCKET_GROUP, else the group of the directory, api/, which
 * is MLC_WEB_GROUP's) may connect.  The socket is made under a umask that
 * leaves no moment in which others could.
 */
static int open_socket(const char *path)
{
	const char *group = mlc_config_get("MLC_SOCKET_GROUP", NULL);
	char dir[4096], *slash;
	struct stat st;
	mode_t old;
	gid_t gid = (gid_t)-1;
	int sock;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	if (group && *group) {
		struct group *g = getgrnam(group);

		if (!g)
			mlc_die("MLC_SOCKET_GROUP '%s' is not a group of this system", group);
		gid = g->gr_gid;
	} else if (stat(dir, &st) == 0) {
		gid = st.st_gid;
	}
	unlink(path);
	old = umask(0117);
	sock = FCGX_OpenSocket(path, 1024);
	umask(old);
	if (sock < 0)
		mlc_die("cannot listen on %s: %s", path, strerror(errno));
	/* Every worker of the pool polls it and races to accept: the ones
	 * that lose must get EAGAIN, not block. */
	if (fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK) < 0)
		mlc_die("cannot make %s non-blocking: %s", path, strerror(errno));
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)
		mlc_log("warn", NULL, "cannot give %s to group %u: %s; nginx must run as %u or "
			"in its group", path, (unsigned)gid, strerror(errno), (unsigned)getuid());
	if (chmod(path, 0660) < 0)
		mlc_die("chmod %s: %s", path, strerror(errno));
	if (stat(dir, &st) == 0 && (st.st_mode & 0007))
		mlc_log("warn", NULL, "the socket's directory %s is open to others (mode %04o); "
			"0750 with nginx's group is enough", dir, (unsigned)(st.st_mode & 07777));
	return sock;
}

/* Remove the socket file at exit, unless another master has since put
 * its own socket at the same path. */
static void remove_own_socket(const char *path, const struct stat *own)
{
	struct stat now;

	if (stat(path, &now) == 0 && now.st_ino == own->st_ino && now.st_dev == own->st_dev)
		unlink(path);
}

/* Reap dead workers and start their replacements in the pool each came
 * from, pausing when workers die right after starting so that a broken
 * setup does not spin. */
static void respawn(struct pool *pools)
{
	static time_t last_burst;
	struct pool *p;
	int status, i;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (p = pools; p < pools + NPOOLS; p++) {
			for (i = 0; i < p->n; i++) {
				if (p->pids[i] != pid)
					continue;
				mlc_log("warn", NULL, "%s worker %d exited (%s %d), respawning", p->name,
					(int)pid, WIFSIGNALED(status) ? "signal" : "status",
					WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
				if (time(NULL) == last_burst)
					sleep(1);
				last_burst = time(NULL);
				p->pids[i] = spawn_worker(pools, p->sock);
				mlc_metrics_worker_restart(p == &pools[SLOW]);
			}
		}
	}
}

static void shutdown_workers(struct pool *pools)
{
	long timeout = mlc_config_long("MLC_SHUTDOWN_TIMEOUT", 20);
	time_t deadline = time(NULL) + timeout;
	struct pool *p;
	int alive, i;

	for (p = pools; p < pools + NPOOLS; p++)
		for (i = 0; i < p->n; i++)
			if (p->pids[i] > 0)
				kill(p->pids[i], SIGTERM);
	do {
		alive = 0;
		for (p = pools; p < pools + NPOOLS; p++) {
			for (i = 0; i < p->n; i++) {
				if (p->pids[i] <= 0)
					continue;
				if (waitpid(p->pids[i], NULL, WNOHANG) == p->pids[i])
					p->pids[i] = 0;
				else
					alive++;
			}
		}
		if (alive)
			usleep(20000);
	} while (alive && time(NULL) < deadline);
	for (p = pools; p < pools + NPOOLS; p++) {
		for (i = 0; i < p->n; i++) {
			if (p->pids[i] > 0) {
				mlc_log("warn", NULL, "%s worker %d did not stop in %lds, killing it",
					p->name, (int)p->pids[i], timeout);
				kill(p->pids[i], SIGKILL);
				waitpid(p->pids[i], NULL, 0);
			}
		}
	}
}

/* Tell the workers to reopen the log file; each takes it when it next
 * waits for work (see take_reopen_request). */
static void reopen_logs(struct pool *pools)
{
	struct pool *p;
	int i;

	mlc_log_reopen();
	for (p = pools; p < pools + NPOOLS; p++)
		for (i = 0; i < p->n; i++)
			if (p->pids[i] > 0)
				kill(p->pids[i], SIGHUP);
}

/* Fill in a pool's name, socket path and size from the configuration.
 * The slow socket defaults to the fast one's path with "-slow" before its
 * ".sock" (or at its end), so that a master started with only MLC_SOCKET
 * set never takes over another master's slow socket. */
static void pool_configure(struct pool *pools)
{
	const char *path = mlc_config_get("MLC_SOCKET", NULL), *slow;
	struct pool *f = &pools[FAST], *s = &pools[SLOW];
	char base[sizeof(f->path)];
	size_t len;
	int n;

	memset(pools, 0, NPOOLS * sizeof(*pools));
	f->name = "fast";
	s->name = "slow";
	if (path)
		snprintf(f->path, sizeof(f->path), "%s", path);
	else
		snprintf(f->path, sizeof(f->path), "%s/api/mlc-api.sock",
			 mlc_config_get("MLC_VAR", "var"));
	slow = mlc_config_get("MLC_SLOW_SOCKET", NULL);
	memcpy(base, f->path, sizeof(base));
	len = strlen(base);
	if (len > 5 && !strcmp(base + len - 5, ".sock"))
		len -= 5;
	if (slow)
		n = snprintf(s->path, sizeof(s->path), "%s", slow);
	else
		n = snprintf(s->path, sizeof(s->path), "%.*s-slow%s", (int)len, base,
			     base[len] ? ".sock" : "");
	if (n < 0 || (size_t)n >= sizeof(s->path))
		mlc_die("the slow pool's socket path is too long");
	if (!strcmp(f->path, s->path))
		mlc_die("MLC_SLOW_SOCKET must differ from MLC_SOCKET (%s)", f->path);
	f->n = mlc_pool_size(0);
	s->n = mlc_pool_size(1);
}

static void pool_open(struct pool *p)
{
	p->sock = open_socket(p->path);
	if (stat(p->path, &p->own) < 0)
		mlc_die("stat %s: %s", p->path, strerror(errno));
}

static void pool_start(struct pool *pools, struct pool *p)
{
	int i;

	for (i = 0; i < p->n; i++)
		p->pids[i] = spawn_worker(pools, p->sock);
}

static void pool_close(struct pool *p)
{
	close(p->sock);
	remove_own_socket(p->path, &p->own);
}

static void usage(FILE *to, const char *prog)
{
	fprintf(to, "usage: %s [-c mlconnector.conf] [-l|--log FILE]\n"
		"       %s --version\n", prog, prog);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "log", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = getenv("MLC_CONF");
	const char *log_file = NULL;
	static struct pool pools[NPOOLS];
	struct mlc_err err;
	sigset_t block, empty;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:l:Vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			break;
		case 'l':
			log_file = optarg;
			break;
		case 'V':
			printf("mlc-api %s (database schema version %d)\n", MLC_VERSION,
			       MLC_SCHEMA_VERSION);
			return 0;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	if (log_file && mlc_log_open(log_file) < 0)
		mlc_die("cannot open the log file %s: %s", log_file, strerror(errno));
	if (conf && mlc_config_load(conf, &err) < 0)
		mlc_die("%s", err.msg);
	{
		struct mlc_db_target t;

		if (mlc_db_target_config(&t, err.msg, sizeof(err.msg)) < 0)
			mlc_die("%s", err.msg);
	}
	if (mlc_auth_setup(err.msg, sizeof(err.msg)) < 0)
		mlc_die("%s", err.msg);
	pool_configure(pools);
	if (mlc_metrics_init() < 0)
		mlc_die("cannot map the metrics segment: %s", strerror(errno));

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (mysql_library_init(0, NULL, NULL))
		mlc_die("cannot initialise the MariaDB client library");
	FCGX_Init();
	/* The slow socket first: whoever waits for the fast socket to appear
	 * (scripts/mlc, the init script) then finds both. */
	pool_open(&pools[SLOW]);
	pool_open(&pools[FAST]);

	/* Signals are only taken in sigsuspend, so none is lost between the
	 * checks of the loop below. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, NULL);
	set_handler(SIGTERM, on_stop);
	set_handler(SIGINT, on_stop);
	set_handler(SIGCHLD, on_child);
	set_handler(SIGHUP, on_reopen);
	signal(SIGPIPE, SIG_IGN);

	pool_start(pools, &pools[FAST]);
	pool_start(pools, &pools[SLOW]);
	mlc_log("info", NULL, "mlc-api %s listening on %s with %d workers and on %s with %d "
		"workers for slow routes", MLC_VERSION, pools[FAST].path, pools[FAST].n,
		pools[SLOW].path, pools[SLOW].n);
	sigemptyset(&empty);
	while (!stop_requested) {
		sigsuspend(&empty);
		if (child_exited && !stop_requested) {
			child_exited = 0;
			respawn(pools);
		}
		if (reopen_requested && !stop_requested) {
			reopen_requested = 0;
			reopen_logs(pools);
		}
	}
	mlc_log("info", NULL, "stopping");
	shutdown_workers(pools);
	pool_close(&pools[FAST]);
	pool_close(&pools[SLOW]);
	mysql_library_end();
	curl_global_cleanup();
	mlc_config_release();
	return 0;
}
