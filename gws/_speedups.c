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
    return PyModule_Create(&speedups_module);
}
