/* recv_datagram: one UDP datagram off a socket in one C call (quicish.udp's receive).
 *
 * Python's socket.recvmsg builds the datagram, a list of (level, type, bytes) control
 * messages and an address tuple, and raises BlockingIOError when the socket is empty, which
 * quicish.udp then parses in Python: a request/response wake pays for all of it (and every
 * 4th wake for the exception of the read that finds nothing).  This reads the datagram with
 * recvmsg(2) (MSG_DONTWAIT), reads the ECN codepoint (IP_TOS / IPV6_TCLASS) and the GRO
 * segment size (UDP_GRO) from the control messages in C, and returns
 * (data, (host, port), ecn, segment), or None when nothing waits; other errors raise
 * OSError (its errno subclass) as the socket module does, after a retry on EINTR (PEP 475).
 * The address tuple of the last sender is kept and handed out again while the sender is
 * the same (equal to a new one; the same object).  The twin, quicish.udp.receive_one, is
 * the Python path over socket.recvmsg.
 */
#include "pytypes.h"

#ifndef _WIN32
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef IPV6_TCLASS
#define IPV6_TCLASS 67
#endif

#define RECV_MAX 65535
#define CMSG_MAX 256

static unsigned char recv_buf[RECV_MAX]; /* (used with the GIL held: no other reader) */
static struct sockaddr_storage last_sa;  /* the last sender and its (host, port) tuple */
static socklen_t last_len;
static PyObject *last_addr;

/* (host, port) of sa, as socket.recvmsg's address would give its first two items. */
static PyObject *address_of(const struct sockaddr_storage *sa, socklen_t len)
{
    char host[NI_MAXHOST];
    unsigned port;
    PyObject *text, *out;
    if (sa->ss_family == AF_INET)
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    else if (sa->ss_family == AF_INET6)
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    else {
        PyErr_SetString(PyExc_OSError, "recv_datagram: not an IP address");
        return NULL;
    }
    /* As the socket module: getnameinfo with NI_NUMERICHOST (an IPv6 scope kept). */
    if (getnameinfo((const struct sockaddr *)sa, len, host, sizeof(host), NULL, 0,
                    NI_NUMERICHOST) != 0) {
        PyErr_SetString(PyExc_OSError, "recv_datagram: unreadable address");
        return NULL;
    }
    if (!(text = PyUnicode_FromString(host)))
        return NULL;
    out = Py_BuildValue("(NI)", text, port);
    return out;
}

/* recv_datagram(fd, cmsg_space) -> (data, (host, port), ecn, segment) | None */
static PyObject *recv_datagram(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    struct sockaddr_storage sa;
    unsigned char control[CMSG_MAX];
    struct iovec iov;
    struct msghdr msg;
    struct cmsghdr *cm;
    long fd, space;
    ssize_t n;
    int ecn = 0, segment = 0;
    PyObject *data, *addr;
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "recv_datagram(fd, cmsg_space)");
        return NULL;
    }
    fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    space = PyLong_AsLong(args[1]);
    if (space == -1 && PyErr_Occurred())
        return NULL;
    if (space < 0 || space > CMSG_MAX) {
        PyErr_SetString(PyExc_ValueError, "recv_datagram: cmsg_space out of range");
        return NULL;
    }
    for (;;) {
        memset(&msg, 0, sizeof(msg));
        iov.iov_base = recv_buf;
        iov.iov_len = RECV_MAX;
        msg.msg_name = &sa;
        msg.msg_namelen = sizeof(sa);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space ? control : NULL;
        msg.msg_controllen = (size_t)space;
        n = recvmsg((int)fd, &msg, MSG_DONTWAIT);
        if (n >= 0)
            break;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            Py_RETURN_NONE;
        if (errno != EINTR)
            return PyErr_SetFromErrno(PyExc_OSError);
        if (PyErr_CheckSignals() < 0) /* (PEP 475: retried unless a handler raised) */
            return NULL;
    }
    if (space) {
        for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            size_t len = cm->cmsg_len - CMSG_LEN(0);
            const unsigned char *value = CMSG_DATA(cm);
            if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO && len >= 2) {
                if (len >= 4) {
                    int32_t v;
                    memcpy(&v, value, 4);
                    segment = (int)v;
                } else {
                    uint16_t v;
                    memcpy(&v, value, 2);
                    segment = (int)v;
                }
            } else if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TOS) ||
                       (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_TCLASS)) {
                ecn = len ? value[0] & 0x03 : 0; /* TOS byte / TCLASS int (LE) */
            }
        }
    }
    if (last_addr && msg.msg_namelen == last_len && memcmp(&sa, &last_sa, last_len) == 0) {
        addr = Py_NewRef(last_addr);
    } else {
        if (!(addr = address_of(&sa, msg.msg_namelen)))
            return NULL;
        Py_XSETREF(last_addr, Py_NewRef(addr));
        memcpy(&last_sa, &sa, msg.msg_namelen);
        last_len = msg.msg_namelen;
    }
    if (!(data = PyBytes_FromStringAndSize((const char *)recv_buf, n))) {
        Py_DECREF(addr);
        return NULL;
    }
    return Py_BuildValue("(NNii)", data, addr, ecn, segment);
}

PyMethodDef qr_udp_methods[] = {
    {"recv_datagram", (PyCFunction)(void (*)(void))recv_datagram, METH_FASTCALL,
     PyDoc_STR("recv_datagram(fd, cmsg_space) -> (data, (host, port), ecn, segment) | None\n\n"
               "One datagram off the socket (None when it would block), its ECN codepoint\n"
               "and GRO segment size read from up to cmsg_space bytes of control messages.")},
    {NULL, NULL, 0, NULL},
};
#else
PyMethodDef qr_udp_methods[] = {
    {NULL, NULL, 0, NULL},
};
#endif
