/* Optional C accelerator for gws: XOR masking (RFC 6455 section 5.3).
 * gws.frames falls back to a pure-Python big-integer XOR when this module is
 * not built; both give the same bytes. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *
apply_mask(PyObject *self, PyObject *args)
{
    Py_buffer data, key;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "y*y*:apply_mask", &data, &key)) {
        return NULL;
    }
    if (key.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask key must be 4 bytes");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    {
        const unsigned char *in = (const unsigned char *)data.buf;
        const unsigned char *k = (const unsigned char *)key.buf;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
        Py_ssize_t n = data.len, i = 0;
        unsigned char k8bytes[8];
        uint64_t k8, word;

        memcpy(k8bytes, k, 4);
        memcpy(k8bytes + 4, k, 4);
        memcpy(&k8, k8bytes, 8);
        for (; i + 8 <= n; i += 8) {
            memcpy(&word, in + i, 8);
            word ^= k8;
            memcpy(out + i, &word, 8);
        }
        for (; i < n; i++) {
            out[i] = in[i] ^ k[i & 3];
        }
    }
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&key);
    return result;
}

/* ---- receive path: whole-frame parse and direct payload buffers ----------
 * parse_frame() decodes the common frame (final, uncompressed text or binary,
 * masked as expected, within max_size, complete) straight from the receive
 * buffer; PayloadBuffer is a writable buffer the socket receives a large
 * payload into, handed over as the bytes read() returns without a copy.
 * gws.frames has the pure-Python equivalents (same results). */

static PyObject *
parse_frame(PyObject *self, PyObject *args)
{
    Py_buffer data;
    int expect_masked;
    Py_ssize_t max_size;
    PyObject *payload = NULL, *result = NULL;

    if (!PyArg_ParseTuple(args, "y*pn:parse_frame", &data, &expect_masked, &max_size)) {
        return NULL;
    }
    {
        const unsigned char *buf = (const unsigned char *)data.buf;
        Py_ssize_t have = data.len, pos = 2;
        uint64_t length;
        int opcode;

        if (have < 2) {
            goto none;
        }
        opcode = buf[0] & 0x0F;
        /* fin set, no reserved bits, text or binary; masking as this side expects */
        if ((buf[0] & 0xF0) != 0x80 || (opcode != 1 && opcode != 2)
            || ((buf[1] & 0x80) != 0) != (expect_masked != 0)) {
            goto none;
        }
        length = buf[1] & 0x7F;
        if (length == 126) {
            if (have < 4) {
                goto none;
            }
            length = ((uint64_t)buf[2] << 8) | buf[3];
            pos = 4;
        }
        else if (length == 127) {
            int i;
            if (have < 10) {
                goto none;
            }
            length = 0;
            for (i = 2; i < 10; i++) {
                length = (length << 8) | buf[i];
            }
            pos = 10;
        }
        if (expect_masked) {
            pos += 4;
        }
        if (have < pos || length > (uint64_t)(have - pos) || (max_size >= 0 && length > (uint64_t)max_size)) {
            goto none;
        }
        {
            Py_ssize_t n = (Py_ssize_t)length;
            const unsigned char *src = buf + pos;
            unsigned char *tmp = NULL;

            if (expect_masked && n > 0) {
                const unsigned char *k = buf + pos - 4;
                Py_ssize_t i;
                payload = PyBytes_FromStringAndSize(NULL, n);
                if (payload == NULL) {
                    goto done;
                }
                tmp = (unsigned char *)PyBytes_AS_STRING(payload);
                for (i = 0; i < n; i++) {
                    tmp[i] = src[i] ^ k[i & 3];
                }
                src = tmp;
            }
            if (opcode == 1) {
                PyObject *text = PyUnicode_DecodeUTF8((const char *)src, n, "strict");
                Py_XDECREF(payload);
                payload = text;
                if (payload == NULL) {
                    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                        goto done;
                    }
                    PyErr_Clear(); /* the general path reports it (close 1007) */
                    goto none;
                }
            }
            else if (payload == NULL) {
                payload = PyBytes_FromStringAndSize((const char *)src, n);
                if (payload == NULL) {
                    goto done;
                }
            }
            result = Py_BuildValue("(iNn)", opcode, payload, pos + n);
            goto done;
        }
    }
none:
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&data);
    return result;
}

typedef struct {
    PyObject_HEAD
    PyObject *bytes; /* the payload being filled; NULL once taken */
    Py_ssize_t exports;
} PayloadBuffer;

static PyTypeObject PayloadBuffer_Type;

static PyObject *
PayloadBuffer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Py_ssize_t n;
    PayloadBuffer *self;

    if (!PyArg_ParseTuple(args, "n:PayloadBuffer", &n)) {
        return NULL;
    }
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "negative size");
        return NULL;
    }
    self = (PayloadBuffer *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    /* Uninitialised: pages are touched only as the socket fills them. */
    self->bytes = PyBytes_FromStringAndSize(NULL, n);
    if (self->bytes == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->exports = 0;
    return (PyObject *)self;
}

static void
PayloadBuffer_dealloc(PayloadBuffer *self)
{
    Py_XDECREF(self->bytes);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t
PayloadBuffer_len(PayloadBuffer *self)
{
    return self->bytes == NULL ? 0 : PyBytes_GET_SIZE(self->bytes);
}

static int
PayloadBuffer_getbuffer(PayloadBuffer *self, Py_buffer *view, int flags)
{
    if (self->bytes == NULL) {
        PyErr_SetString(PyExc_BufferError, "payload already taken");
        view->obj = NULL;
        return -1;
    }
    if (PyBuffer_FillInfo(view, (PyObject *)self, PyBytes_AS_STRING(self->bytes),
                          PyBytes_GET_SIZE(self->bytes), 0, flags) < 0) {
        return -1;
    }
    self->exports++;
    return 0;
}

static void
PayloadBuffer_releasebuffer(PayloadBuffer *self, Py_buffer *view)
{
    self->exports--;
}

static PyBufferProcs PayloadBuffer_as_buffer = {
    (getbufferproc)PayloadBuffer_getbuffer,
    (releasebufferproc)PayloadBuffer_releasebuffer,
};

static PySequenceMethods PayloadBuffer_as_sequence = {
    (lenfunc)PayloadBuffer_len,
};

static PyTypeObject PayloadBuffer_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    "gws._speedups.PayloadBuffer",  /* tp_name */
    sizeof(PayloadBuffer),          /* tp_basicsize */
};

static void
xor_in_place(unsigned char *p, Py_ssize_t n, const unsigned char *k)
{
    Py_ssize_t i = 0;
    unsigned char k8bytes[8];
    uint64_t k8, word;

    memcpy(k8bytes, k, 4);
    memcpy(k8bytes + 4, k, 4);
    memcpy(&k8, k8bytes, 8);
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, p + i, 8);
        word ^= k8;
        memcpy(p + i, &word, 8);
    }
    for (; i < n; i++) {
        p[i] ^= k[i & 3];
    }
}

static PyObject *
take_payload(PyObject *self, PyObject *args)
{
    PyObject *obj, *keyobj, *result;
    Py_buffer key = {0}, data;

    if (!PyArg_ParseTuple(args, "OO:take_payload", &obj, &keyobj)) {
        return NULL;
    }
    if (keyobj != Py_None) {
        if (PyObject_GetBuffer(keyobj, &key, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        if (key.len != 4) {
            PyBuffer_Release(&key);
            PyErr_SetString(PyExc_ValueError, "mask key must be 4 bytes");
            return NULL;
        }
    }
    if (Py_TYPE(obj) == &PayloadBuffer_Type && ((PayloadBuffer *)obj)->exports == 0
        && ((PayloadBuffer *)obj)->bytes != NULL
        && Py_REFCNT(((PayloadBuffer *)obj)->bytes) == 1) {
        /* No view of it is left: the filled bytes become the payload. */
        result = ((PayloadBuffer *)obj)->bytes;
        ((PayloadBuffer *)obj)->bytes = NULL;
        if (key.obj != NULL) {
            xor_in_place((unsigned char *)PyBytes_AS_STRING(result), PyBytes_GET_SIZE(result),
                         (const unsigned char *)key.buf);
        }
    }
    else {
        if (PyObject_GetBuffer(obj, &data, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&key);
            return NULL;
        }
        result = PyBytes_FromStringAndSize((const char *)data.buf, data.len);
        if (result != NULL && key.obj != NULL) {
            xor_in_place((unsigned char *)PyBytes_AS_STRING(result), PyBytes_GET_SIZE(result),
                         (const unsigned char *)key.buf);
        }
        PyBuffer_Release(&data);
    }
    PyBuffer_Release(&key);
    return result;
}

/* ---- end of the receive path block ---- */

static PyMethodDef speedups_methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, key) -> bytes: XOR data with the 4-byte masking key."},
    {"parse_frame", parse_frame, METH_VARARGS,
     "parse_frame(data, expect_masked, max_size) -> (opcode, payload, end) or None."},
    {"take_payload", take_payload, METH_VARARGS,
     "take_payload(buffer, key) -> bytes: a filled PayloadBuffer's payload, unmasked with key."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "gws._speedups", NULL, -1, speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module;

    PayloadBuffer_Type.tp_dealloc = (destructor)PayloadBuffer_dealloc;
    PayloadBuffer_Type.tp_as_sequence = &PayloadBuffer_as_sequence;
    PayloadBuffer_Type.tp_as_buffer = &PayloadBuffer_as_buffer;
    PayloadBuffer_Type.tp_flags = Py_TPFLAGS_DEFAULT;
    PayloadBuffer_Type.tp_doc = "PayloadBuffer(n): n writable bytes; take_payload() hands them over.";
    PayloadBuffer_Type.tp_new = PayloadBuffer_new;
    if (PyType_Ready(&PayloadBuffer_Type) < 0) {
        return NULL;
    }
    module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&PayloadBuffer_Type);
    if (PyModule_AddObject(module, "PayloadBuffer", (PyObject *)&PayloadBuffer_Type) < 0) {
        Py_DECREF(&PayloadBuffer_Type);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
