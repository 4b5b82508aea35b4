/* The CPython extension types' shared helpers and their export (qr_export_types).
 *
 * The C core (rangeset.c, reassembly.c, aead.c) never touches Python objects; three
 * files make it CPython extension types: py_rangeset.c (RangeSet), py_reassembly.c
 * (ReassemblyBuffer) and py_cipher.c (PacketCipher), with what they share declared in
 * pytypes.h and defined here.  A method call is one C call: methods are METH_FASTCALL
 * (no argument tuple), ints are read with the C API, STREAM data and packets through the
 * buffer protocol, and bytes / tuples / lists are built in C.  RangeSet and
 * ReassemblyBuffer behave exactly as the pure-Python twin (quicish.native.pure), and
 * raise quicish.errors.ProtocolError for what a peer did wrong; RangeSet subclasses the
 * twin's AbstractRangeSet.
 *
 * The extension module is built by cffi (build_core.py), which exposes one function of
 * this file, qr_export_types: it creates the three types (heap types, PyType_FromSpec)
 * and sets them as attributes of the extension module (quicish.native.accelerated calls
 * it once at import).
 */
#include "pytypes.h"

#include <stdarg.h>
#include <stdio.h>

PyObject *qr_protocol_error, *qr_iterable, *qr_abstract_range_set, *qr_str_ranges;

PyObject *qr_raise_protocol(int code, const char *format, ...)
{
    va_list va;
    PyObject *reason, *exc;
    va_start(va, format);
    reason = PyUnicode_FromFormatV(format, va);
    va_end(va);
    if (!reason)
        return NULL;
    exc = PyObject_CallFunction(qr_protocol_error, "iO", code, reason);
    Py_DECREF(reason);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* Arguments of a METH_FASTCALL | METH_KEYWORDS method by Python's rules: out[0..nmax)
 * gets the positional and keyword arguments (borrowed), NULL for an omitted optional
 * one; the first nreq are required.  -1 with a TypeError otherwise. */
int qr_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                  const char *const *names, Py_ssize_t nreq, Py_ssize_t nmax, PyObject **out)
{
    Py_ssize_t i, k, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > nmax) {
        if (nreq == nmax)
            PyErr_Format(PyExc_TypeError, "%s() takes %zd positional argument%s but %zd %s given",
                         fname, nmax + 1, nmax ? "s" : "", nargs + 1, nargs ? "were" : "was");
        else
            PyErr_Format(PyExc_TypeError,
                         "%s() takes from %zd to %zd positional arguments but %zd were given",
                         fname, nreq + 1, nmax + 1, nargs + 1);
        return -1;
    }
    for (i = 0; i < nmax; i++)
        out[i] = i < nargs ? args[i] : NULL;
    for (k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        for (i = 0; i < nmax; i++)
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0)
                break;
        if (i == nmax) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", fname,
                         key);
            return -1;
        }
        if (out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fname,
                         names[i]);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (i = 0; i < nreq; i++) {
        if (!out[i]) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %zd)", fname,
                         names[i], i + 1);
            return -1;
        }
    }
    return 0;
}

PyObject *qr_u64_pair(uint64_t a, uint64_t b)
{
    PyObject *t = PyTuple_New(2), *x;
    if (!t)
        return NULL;
    if (!(x = PyLong_FromUnsignedLongLong(a))) {
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, x);
    if (!(x = PyLong_FromUnsignedLongLong(b))) {
        Py_DECREF(t);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 1, x);
    return t;
}

/* An attribute of a module, as a new reference in *slot (kept across calls). */
static int import_attr(PyObject **slot, const char *module, const char *name)
{
    PyObject *mod, *o;
    if (!(mod = PyImport_ImportModule(module)))
        return -1;
    o = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    if (!o)
        return -1;
    Py_XSETREF(*slot, o);
    return 0;
}

static int export_types(const char *module_name, const char *type_module, const char *pure_name)
{
    PyObject *mod = NULL, *bases = NULL, *rs_type = NULL, *ra_type = NULL, *pc_type = NULL,
             *tap_type = NULL, *spool_type = NULL;
    int ret = -1;
    if (import_attr(&qr_protocol_error, "quicish.errors", "ProtocolError") < 0 ||
        import_attr(&qr_iterable, "collections.abc", "Iterable") < 0 ||
        import_attr(&qr_abstract_range_set, pure_name, "AbstractRangeSet") < 0)
        return -1;
    if (!PyType_Check(qr_abstract_range_set)) {
        PyErr_Format(PyExc_TypeError, "%s.AbstractRangeSet is not a class", pure_name);
        return -1;
    }
    if (!qr_str_ranges && !(qr_str_ranges = PyUnicode_InternFromString("ranges")))
        return -1;
    /* The type names give __module__ (the public module) and __qualname__. */
    if ((size_t)snprintf(qr_rs_name, sizeof(qr_rs_name), "%s.RangeSet", type_module) >=
            sizeof(qr_rs_name) ||
        (size_t)snprintf(qr_ra_name, sizeof(qr_ra_name), "%s.ReassemblyBuffer", type_module) >=
            sizeof(qr_ra_name) ||
        (size_t)snprintf(qr_pc_name, sizeof(qr_pc_name), "%s.PacketCipher", type_module) >=
            sizeof(qr_pc_name) ||
        (size_t)snprintf(qr_tap_name, sizeof(qr_tap_name), "%s.QlogTap", type_module) >=
            sizeof(qr_tap_name) ||
        (size_t)snprintf(qr_bulk_name, sizeof(qr_bulk_name), "%s.BulkRecords", type_module) >=
            sizeof(qr_bulk_name) ||
        (size_t)snprintf(qr_spool_name, sizeof(qr_spool_name), "%s.QlogSpool", type_module) >=
            sizeof(qr_spool_name)) {
        PyErr_SetString(PyExc_ValueError, "module name too long");
        return -1;
    }
    if (!(bases = PyTuple_Pack(1, qr_abstract_range_set)))
        goto done;
    if (!(rs_type = PyType_FromSpecWithBases(&qr_rs_spec, bases)))
        goto done;
    if (!(ra_type = PyType_FromSpec(&qr_ra_spec)))
        goto done;
    if (!(pc_type = PyType_FromSpec(&qr_pc_spec)))
        goto done;
    if (!(tap_type = PyType_FromSpec(&qr_tap_spec)))
        goto done;
    if (!(spool_type = PyType_FromSpec(&qr_spool_spec)))
        goto done;
    if (!qr_bulk_type && !(qr_bulk_type = PyType_FromSpec(&qr_bulk_spec)))
        goto done; /* (kept for the process: the tap and the renderer compare against it) */
    if (!(mod = PyImport_ImportModule(module_name)))
        goto done;
    if (PyModule_AddObjectRef(mod, "RangeSet", rs_type) < 0 ||
        PyModule_AddObjectRef(mod, "ReassemblyBuffer", ra_type) < 0 ||
        PyModule_AddObjectRef(mod, "PacketCipher", pc_type) < 0 ||
        PyModule_AddObjectRef(mod, "QlogTap", tap_type) < 0 ||
        PyModule_AddObjectRef(mod, "QlogSpool", spool_type) < 0 ||
        PyModule_AddObjectRef(mod, "BulkRecords", qr_bulk_type) < 0 ||
        PyModule_AddFunctions(mod, qr_qlog_methods) < 0 ||
        PyModule_AddFunctions(mod, qr_qlog_packet_methods) < 0 ||
        PyModule_AddFunctions(mod, qr_udp_methods) < 0)
        goto done;
    ret = 0;
done:
    Py_XDECREF(mod);
    Py_XDECREF(bases);
    Py_XDECREF(rs_type);
    Py_XDECREF(ra_type);
    Py_XDECREF(pc_type);
    Py_XDECREF(tap_type);
    Py_XDECREF(spool_type);
    return ret;
}

/* Declared to cffi (build_core.py) and called through the module's `lib` once:
 * creates RangeSet, ReassemblyBuffer and PacketCipher, named type_module.RangeSet etc.
 * (RangeSet on top of pure_name's AbstractRangeSet), and sets them as attributes of the
 * extension module module_name (already imported: it is the caller).  Returns NULL, or a message
 * describing the Python exception that stopped it (cleared: a cffi function cannot
 * raise).  cffi's wrapper releases the GIL around the call (build_core.py), so this
 * function must take it back itself (PyGILState_Ensure) before using the C API. */
const char *qr_export_types(const char *module_name, const char *type_module,
                            const char *pure_name);

const char *qr_export_types(const char *module_name, const char *type_module,
                            const char *pure_name)
{
    static char message[512];
    const char *result = NULL;
    PyGILState_STATE gil = PyGILState_Ensure();
    if (export_types(module_name, type_module, pure_name) < 0) {
        PyObject *value, *text = NULL;
        const char *s = NULL;
#if PY_VERSION_HEX >= 0x030C0000
        value = PyErr_GetRaisedException();
#else
        PyObject *type, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
#endif
        if (value && (text = PyObject_Str(value)))
            s = PyUnicode_AsUTF8(text);
        snprintf(message, sizeof(message), "%s: %s", value ? Py_TYPE(value)->tp_name : "error",
                 s ? s : "?");
        PyErr_Clear();
        Py_XDECREF(text);
        Py_XDECREF(value);
        result = message;
    }
    PyGILState_Release(gil);
    return result;
}
