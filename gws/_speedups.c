/* Optional C accelerator for gws: XOR masking (RFC 6455 section 5.3) and
 * whole-frame encoding. gws.frames falls back to pure Python when this
 * module is not built; both give the same bytes. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

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

/* ---- Send side: a whole frame in one allocation --------------------------
 * frame_bytes(b0, payload, key) -> bytes: the frame header (first byte b0,
 * the mask bit set when key is given), the key, then the payload masked with
 * it. A str payload is encoded as UTF-8 straight into the frame, raising
 * UnicodeEncodeError as str.encode("utf-8") does. gws.frames.py_frame_bytes
 * is the pure-Python twin. */

/* out[i] = in[i] ^ key[i % 4]; in == out is allowed. 16 bytes at a time
 * with SSE2 (every x86-64 CPU has it), else 8. */
static void
xor_key(unsigned char *out, const unsigned char *in, Py_ssize_t n,
        const unsigned char *key)
{
    unsigned char k16[16];
    uint64_t k8, word;
    Py_ssize_t i = 0;

    memcpy(k16, key, 4);
    memcpy(k16 + 4, key, 4);
    memcpy(k16 + 8, k16, 8);
    memcpy(&k8, k16, 8);
#if defined(__SSE2__) || defined(_M_X64)
    {
        const __m128i k = _mm_loadu_si128((const __m128i *)k16);
        for (; i + 32 <= n; i += 32) {
            __m128i a = _mm_loadu_si128((const __m128i *)(in + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(in + i + 16));
            _mm_storeu_si128((__m128i *)(out + i), _mm_xor_si128(a, k));
            _mm_storeu_si128((__m128i *)(out + i + 16), _mm_xor_si128(b, k));
        }
    }
#endif
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, in + i, 8);
        word ^= k8;
        memcpy(out + i, &word, 8);
    }
    for (; i < n; i++) {
        out[i] = in[i] ^ key[i & 3];
    }
}

/* UTF-8 length of a non-ASCII str, or -1 if it holds a surrogate. The
 * inner loops are branch-free sums in lanes as wide as the characters, over
 * blocks short enough not to overflow them, so that compilers vectorise
 * them. */
#define UTF8_BLOCK 16384

static Py_ssize_t
utf8_length(int kind, const void *data, Py_ssize_t len)
{
    Py_ssize_t n = len, i = 0;
    uint32_t surrogates = 0;

    if (kind == PyUnicode_1BYTE_KIND) {
        const unsigned char *s = (const unsigned char *)data;
        while (i < len) {
            Py_ssize_t end = len - i > UTF8_BLOCK ? i + UTF8_BLOCK : len;
            uint16_t extra = 0;
            for (; i < end; i++) {
                extra += (uint16_t)(s[i] >> 7);
            }
            n += extra;
        }
    }
    else if (kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *s = (const Py_UCS2 *)data;
        uint16_t sur = 0;
        while (i < len) {
            Py_ssize_t end = len - i > UTF8_BLOCK ? i + UTF8_BLOCK : len;
            uint16_t extra = 0;
            for (; i < end; i++) {
                uint16_t c = s[i];
                extra += (uint16_t)((c >= 0x80) + (c >= 0x800));
                sur |= (uint16_t)((c & 0xF800) == 0xD800);
            }
            n += extra;
        }
        surrogates = sur;
    }
    else {
        const Py_UCS4 *s = (const Py_UCS4 *)data;
        while (i < len) {
            Py_ssize_t end = len - i > UTF8_BLOCK ? i + UTF8_BLOCK : len;
            uint32_t extra = 0;
            for (; i < end; i++) {
                uint32_t c = s[i];
                extra += (c >= 0x80) + (c >= 0x800) + (c >= 0x10000);
                surrogates |= (c & 0xFFFFF800) == 0xD800;
            }
            n += extra;
        }
    }
    return surrogates ? -1 : n;
}

/* Encode one non-ASCII code point (not a surrogate) at out; returns the end. */
static unsigned char *
utf8_char(unsigned char *out, Py_UCS4 c)
{
    if (c < 0x800) {
        out[0] = (unsigned char)(0xC0 | (c >> 6));
        out[1] = (unsigned char)(0x80 | (c & 0x3F));
        return out + 2;
    }
    if (c < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (c >> 12));
        out[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (c & 0x3F));
        return out + 3;
    }
    out[0] = (unsigned char)(0xF0 | (c >> 18));
    out[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (c & 0x3F));
    return out + 4;
}

/* Index of the lowest set bit of m (m != 0). */
static int
lowest_bit(uint64_t m)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(m);
#else
    int k = 0;
    while (!(m & 1)) {
        m >>= 1;
        k++;
    }
    return k;
#endif
}

/* Encode a non-ASCII str (no surrogates: utf8_length checked) as UTF-8.
 * A vector (SSE2) or machine word of characters at a time: all ASCII, they
 * are stored at once; else the ASCII ones before the first that is not (the
 * store writes past them, but those bytes lie inside what these characters
 * encode to, and are then overwritten), then that one. */
static void
utf8_encode(unsigned char *out, int kind, const void *data, Py_ssize_t len)
{
    Py_ssize_t i = 0;

    if (kind == PyUnicode_1BYTE_KIND) {
        const unsigned char *s = (const unsigned char *)data;
#if defined(__SSE2__) || defined(_M_X64)
        while (i + 16 <= len) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            int high = _mm_movemask_epi8(v), ascii;
            _mm_storeu_si128((__m128i *)out, v);
            if (!high) {
                out += 16;
                i += 16;
                continue;
            }
            ascii = lowest_bit((uint64_t)high);
            out = utf8_char(out + ascii, s[i + ascii]);
            i += ascii + 1;
        }
#elif PY_LITTLE_ENDIAN
        while (i + 8 <= len) {
            uint64_t word, high;
            int ascii;
            memcpy(&word, s + i, 8);
            memcpy(out, &word, 8);
            high = word & 0x8080808080808080ULL;
            if (!high) {
                out += 8;
                i += 8;
                continue;
            }
            ascii = lowest_bit(high) >> 3;
            out = utf8_char(out + ascii, s[i + ascii]);
            i += ascii + 1;
        }
#endif
        for (; i < len; i++) {
            if (s[i] < 0x80) {
                *out++ = s[i];
            }
            else {
                out = utf8_char(out, s[i]);
            }
        }
    }
    else if (kind == PyUnicode_2BYTE_KIND) {
        const Py_UCS2 *s = (const Py_UCS2 *)data;
#if defined(__SSE2__) || defined(_M_X64)
        const __m128i not_ascii = _mm_set1_epi16((short)0xFF80);
        const __m128i zero = _mm_setzero_si128();
        while (i + 8 <= len) {
            __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
            /* two bits per character, set where it is ASCII */
            int ascii_bits = _mm_movemask_epi8(
                _mm_cmpeq_epi16(_mm_and_si128(v, not_ascii), zero));
            int ascii;
            _mm_storel_epi64((__m128i *)out, _mm_packus_epi16(v, v));
            if (ascii_bits == 0xFFFF) {
                out += 8;
                i += 8;
                continue;
            }
            ascii = lowest_bit((uint64_t)(~ascii_bits & 0xFFFF)) >> 1;
            out = utf8_char(out + ascii, s[i + ascii]);
            i += ascii + 1;
        }
#elif PY_LITTLE_ENDIAN
        while (i + 4 <= len) {
            uint64_t word, high;
            int ascii;
            memcpy(&word, s + i, 8);
            out[0] = (unsigned char)s[i];
            out[1] = (unsigned char)s[i + 1];
            out[2] = (unsigned char)s[i + 2];
            out[3] = (unsigned char)s[i + 3];
            high = word & 0xFF80FF80FF80FF80ULL;
            if (!high) {
                out += 4;
                i += 4;
                continue;
            }
            ascii = lowest_bit(high) >> 4;
            out = utf8_char(out + ascii, s[i + ascii]);
            i += ascii + 1;
        }
#endif
        for (; i < len; i++) {
            if (s[i] < 0x80) {
                *out++ = (unsigned char)s[i];
            }
            else {
                out = utf8_char(out, s[i]);
            }
        }
    }
    else {
        const Py_UCS4 *s = (const Py_UCS4 *)data;
        for (; i < len; i++) {
            if (s[i] < 0x80) {
                *out++ = (unsigned char)s[i];
            }
            else {
                out = utf8_char(out, s[i]);
            }
        }
    }
}

/* A new bytes object holding the header for a payload of n bytes, room for
 * the payload after it; *payload_at points there. */
static PyObject *
new_frame(int b0, Py_ssize_t n, const unsigned char *key,
          unsigned char **payload_at)
{
    Py_ssize_t head = (n < 126 ? 2 : n < 65536 ? 4 : 10) + (key ? 4 : 0);
    PyObject *frame;
    unsigned char *out;
    unsigned char mbit = key ? 0x80 : 0;

    if (n > PY_SSIZE_T_MAX - head) {
        PyErr_NoMemory();
        return NULL;
    }
    frame = PyBytes_FromStringAndSize(NULL, head + n);
    if (frame == NULL) {
        return NULL;
    }
    out = (unsigned char *)PyBytes_AS_STRING(frame);
    *out++ = (unsigned char)b0;
    if (n < 126) {
        *out++ = (unsigned char)(mbit | n);
    }
    else if (n < 65536) {
        *out++ = (unsigned char)(mbit | 126);
        *out++ = (unsigned char)(n >> 8);
        *out++ = (unsigned char)n;
    }
    else {
        uint64_t len = (uint64_t)n;
        int shift;
        *out++ = (unsigned char)(mbit | 127);
        for (shift = 56; shift >= 0; shift -= 8) {
            *out++ = (unsigned char)(len >> shift);
        }
    }
    if (key) {
        memcpy(out, key, 4);
        out += 4;
    }
    *payload_at = out;
    return frame;
}

static PyObject *
frame_from_str(int b0, PyObject *text, const unsigned char *key)
{
    Py_ssize_t len, n;
    int kind;
    const void *data;
    unsigned char *out;
    PyObject *frame;

#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(text) < 0) {
        return NULL;
    }
#endif
    len = PyUnicode_GET_LENGTH(text);
    kind = PyUnicode_KIND(text);
    data = PyUnicode_DATA(text);
    if (PyUnicode_IS_ASCII(text)) {
        frame = new_frame(b0, len, key, &out);
        if (frame != NULL) {
            if (key) {
                xor_key(out, (const unsigned char *)data, len, key);
            }
            else {
                memcpy(out, data, len);
            }
        }
        return frame;
    }
    n = utf8_length(kind, data, len);
    if (n < 0) {
        /* a lone surrogate: let str.encode raise its own UnicodeEncodeError */
        PyObject *encoded = PyUnicode_AsUTF8String(text);
        if (encoded != NULL) {
            Py_DECREF(encoded);
            PyErr_SetString(PyExc_SystemError, "frame_bytes: surrogate not refused");
        }
        return NULL;
    }
    frame = new_frame(b0, n, key, &out);
    if (frame != NULL) {
        utf8_encode(out, kind, data, len);
        if (key) {
            xor_key(out, out, n, key);
        }
    }
    return frame;
}

static PyObject *
frame_bytes(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long b0;
    const unsigned char *key = NULL;
    PyObject *payload, *frame;
    Py_buffer view;
    unsigned char *out;

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "frame_bytes() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    b0 = PyLong_AsLong(args[0]);
    if (b0 == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (b0 < 0 || b0 > 255) {
        PyErr_SetString(PyExc_ValueError, "first byte must be in 0..255");
        return NULL;
    }
    if (args[2] != Py_None) {
        if (!PyBytes_Check(args[2]) || PyBytes_GET_SIZE(args[2]) != 4) {
            PyErr_SetString(PyExc_ValueError, "mask key must be 4 bytes");
            return NULL;
        }
        key = (const unsigned char *)PyBytes_AS_STRING(args[2]);
    }
    payload = args[1];
    if (PyUnicode_Check(payload)) {
        return frame_from_str((int)b0, payload, key);
    }
    if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    frame = new_frame((int)b0, view.len, key, &out);
    if (frame != NULL) {
        if (key) {
            xor_key(out, (const unsigned char *)view.buf, view.len, key);
        }
        else {
            memcpy(out, view.buf, view.len);
        }
    }
    PyBuffer_Release(&view);
    return frame;
}

/* ---- end of the send side ------------------------------------------------ */

static PyMethodDef speedups_methods[] = {
    {"apply_mask", apply_mask, METH_VARARGS,
     "apply_mask(data, key) -> bytes: XOR data with the 4-byte masking key."},
    {"parse_frame", parse_frame, METH_VARARGS,
     "parse_frame(data, expect_masked, max_size) -> (opcode, payload, end) or None."},
    {"take_payload", take_payload, METH_VARARGS,
     "take_payload(buffer, key) -> bytes: a filled PayloadBuffer's payload, unmasked with key."},

    {"frame_bytes", (PyCFunction)(void (*)(void))frame_bytes, METH_FASTCALL,
     "frame_bytes(b0, payload, key) -> bytes: one whole frame, the payload "
     "(bytes-like, or str sent as UTF-8) masked with key unless key is None."},
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
