/* worker.mapping._sha256_openssl: SHA-256 of a bytes object as its lowercase hex str, in one
 * call, with OpenSSL's SHA-256 (libcrypto).
 *
 * The hash-miss path of worker/mapping/normalize.py hashes short values (an email, a phone
 * number: one 64-byte block). For those, hashlib's OpenSSL path (an EVP context set up, copied
 * and freed per value) and CPython's built-in _sha256 (portable C, no SHA extensions) cost
 * ~300 ns a value; OpenSSL's low-level SHA256_Init/Update/Final run its assembly (SHA-NI or
 * AVX2 where the CPU has them) on a context on the stack, and the hex is written straight into
 * a new ASCII str: ~90 ns. (OpenSSL 3's one-shot SHA256() goes through EVP_Q_digest, slower.)
 *
 * The low-level functions are deprecated in OpenSSL 3.0 but present unless OpenSSL was built
 * with no-deprecated; then this file fails to compile and setup.py builds the rest without it
 * (normalize.py falls back to _sha256).
 *
 * Optional accelerator, used only by the compiled mapping (normalize._COMPILED): the pure-Python
 * path never imports it. Same digests as hashlib.sha256(data).hexdigest(), which
 * tests/unit/test_sha256_openssl.py checks on arbitrary inputs.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/sha.h>

/* Two hex characters per byte value, looked up as one 16-bit copy. */
static char HEX_PAIRS[256][2];

static void
fill_hex_pairs(void)
{
    static const char digits[] = "0123456789abcdef";
    for (int byte = 0; byte < 256; byte++) {
        HEX_PAIRS[byte][0] = digits[byte >> 4];
        HEX_PAIRS[byte][1] = digits[byte & 15];
    }
}

static PyObject *
hex_of(const void *data, size_t size)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256_CTX context;
    if (!SHA256_Init(&context) || !SHA256_Update(&context, data, size)
        || !SHA256_Final(digest, &context)) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL SHA-256 failed");
        return NULL;
    }
    PyObject *text = PyUnicode_New(2 * SHA256_DIGEST_LENGTH, 127);
    if (text == NULL) {
        return NULL;
    }
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    for (int index = 0; index < SHA256_DIGEST_LENGTH; index++) {
        memcpy(out + 2 * index, HEX_PAIRS[digest[index]], 2);
    }
    return text;
}

PyDoc_STRVAR(sha256_hex_doc,
"sha256_hex(data, /)\n--\n\n"
"The lowercase hex SHA-256 of `data` (bytes, or any buffer of bytes): the same str as\n"
"hashlib.sha256(data).hexdigest().");

static PyObject *
sha256_hex(PyObject *Py_UNUSED(module), PyObject *data)
{
    if (PyBytes_CheckExact(data)) {  /* what normalize passes: str.encode()'s result */
        return hex_of(PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data));
    }
    if (PyUnicode_Check(data)) {  /* as hashlib: text must be encoded first */
        PyErr_SetString(PyExc_TypeError, "Strings must be encoded before hashing");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *text = hex_of(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return text;
}

PyDoc_STRVAR(sha256_hex_utf8_doc,
"sha256_hex_utf8(text, /)\n--\n\n"
"The lowercase hex SHA-256 of the UTF-8 of `text` (a str): sha256_hex(text.encode()) without\n"
"the bytes object (an ASCII str is hashed in place). Text that has no UTF-8 (a lone\n"
"surrogate) raises UnicodeEncodeError, as str.encode() does.");

static PyObject *
sha256_hex_utf8(PyObject *Py_UNUSED(module), PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.200s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL) {
        return NULL;
    }
    return hex_of(utf8, (size_t)size);
}

static PyMethodDef methods[] = {
    {"sha256_hex", sha256_hex, METH_O, sha256_hex_doc},
    {"sha256_hex_utf8", sha256_hex_utf8, METH_O, sha256_hex_utf8_doc},
    {NULL, NULL, 0, NULL},
};

/* No state and no exec step: multi-phase initialisation with nothing but the functions. */
static PyModuleDef_Slot slots[] = {
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "worker.mapping._sha256_openssl",
    .m_doc = "SHA-256 hex digests with OpenSSL's libcrypto (see _sha256_openssl.c).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__sha256_openssl(void)
{
    fill_hex_pairs();
    return PyModuleDef_Init(&module_def);
}
