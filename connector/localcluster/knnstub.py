"""Stand-in native libraries for the OpenSearch k-NN plugin from Maven Central.

The ``opensearch-knn`` plugin zip on Maven Central carries no native libraries
(``libopensearchknn_faiss*.so``, ``_nmslib``, ``_common``, ``_simd*``); the
official tarballs do. Without them, the first flush of a ``faiss`` / ``nmslib``
field (the 3.x default engine is faiss) throws ``UnsatisfiedLinkError`` in a
write thread, and OpenSearch *exits* on that Error, taking every other index
down with it.

This module compiles, with the local C compiler, one small library that defines
every ``native`` method of the plugin's ``org.opensearch.knn.jni`` classes:
initialisation and ``free*`` calls do nothing, everything else throws
``UnsupportedOperationException`` with a message naming the fix (use the
``lucene`` engine). The node survives; only the offending shard fails.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NativeMethod", "parse_javap_natives", "render_stub_source", "install_knn_stubs", "KNN_LIBRARY_NAMES"]

logger = logging.getLogger(__name__)

_JNI_PACKAGE = "org/opensearch/knn/jni/"
KNN_LIBRARY_NAMES = (
    "opensearchknn_faiss", "opensearchknn_faiss_avx2", "opensearchknn_faiss_avx512",
    "opensearchknn_faiss_avx512_spr", "opensearchknn_nmslib", "opensearchknn_common",
    "opensearchknn_simd", "opensearchknn_simd_avx2", "opensearchknn_simd_avx512",
    "opensearchknn_simd_avx512_spr",
)  # fmt: skip
_NO_OP_PREFIXES = ("initLibrary", "setMergeInterruptCallback", "free", "release")
_MESSAGE = (
    "k-NN native engines (faiss, nmslib) are not available on this eshybrid local cluster: the "
    'opensearch-knn zip from Maven Central has no native libraries. Use "engine": "lucene".'
)
_RETURN_TYPES = {
    "V": "void", "Z": "jboolean", "B": "jbyte", "C": "jchar", "S": "jshort",
    "I": "jint", "J": "jlong", "F": "jfloat", "D": "jdouble",
}  # fmt: skip


@dataclass(frozen=True)
class NativeMethod:
    """One ``native`` method: its class (``a/b/C``), name and JVM descriptor."""

    class_name: str
    name: str
    descriptor: str


def parse_javap_natives(class_name: str, javap_output: str) -> list[NativeMethod]:
    """The native methods in ``javap -p -s`` output for one class."""
    methods: list[NativeMethod] = []
    lines = javap_output.splitlines()
    for line, following in zip(lines, lines[1:], strict=False):
        if " native " not in f" {line.strip()} ":
            continue
        name = re.search(r"(\w+)\(", line)
        descriptor = re.search(r"descriptor:\s*(\S+)", following)
        if name and descriptor:
            methods.append(NativeMethod(class_name, name.group(1), descriptor.group(1)))
    return methods


def _mangle(text: str) -> str:
    out = []
    for ch in text:
        if ch.isalnum() and ch.isascii():
            out.append(ch)
        elif ch == "/":
            out.append("_")
        elif ch == "_":
            out.append("_1")
        elif ch == ";":
            out.append("_2")
        elif ch == "[":
            out.append("_3")
        else:
            out.append(f"_0{ord(ch):04x}")
    return "".join(out)


def render_stub_source(methods: Iterable[NativeMethod]) -> str:
    """C source defining every method (JNI names; long names for overloads)."""
    methods = list(methods)
    counts: dict[tuple[str, str], int] = {}
    for m in methods:
        counts[(m.class_name, m.name)] = counts.get((m.class_name, m.name), 0) + 1
    parts = [
        "#include <jni.h>",
        f'static const char *MSG = "{_MESSAGE.replace(chr(34), chr(92) + chr(34))}";',
        "static void fail(JNIEnv *env) {",
        '  jclass cls = (*env)->FindClass(env, "java/lang/UnsupportedOperationException");',
        "  if (cls != NULL) (*env)->ThrowNew(env, cls, MSG);",
        "}",
    ]
    for m in methods:
        symbol = f"Java_{_mangle(m.class_name)}_{_mangle(m.name)}"
        if counts[(m.class_name, m.name)] > 1:
            symbol += "__" + _mangle(m.descriptor[1 : m.descriptor.index(")")])
        ret = m.descriptor[m.descriptor.index(")") + 1 :]
        c_type = _RETURN_TYPES.get(ret, "jobject")
        no_op = m.name.startswith(_NO_OP_PREFIXES)
        body = "" if no_op else "fail(env); "
        if c_type != "void":
            body += "return 0;"
        # Arguments are left out: the stubs never read them, and the SysV ABI lets a callee ignore them.
        parts.append(f"JNIEXPORT {c_type} JNICALL {symbol}(JNIEnv *env, jclass cls) {{ {body} }}")
    return "\n".join(parts) + "\n"


def install_knn_stubs(plugin_dir: Path, java_home: Path) -> bool:
    """Compile the stand-in library into ``plugin_dir/lib`` under every name the plugin loads.

    Returns:
        True when installed; False (logged) when no C compiler or ``javap`` is there,
        in which case a faiss/nmslib field will still crash the node.
    """
    cc = shutil.which("cc") or shutil.which("gcc")
    javap = java_home / "bin" / "javap"
    jars = sorted(plugin_dir.glob("opensearch-knn-*.jar"))
    if cc is None or not javap.is_file() or not jars:
        logger.warning(
            "cannot build k-NN stand-in libraries (cc=%s, javap=%s, jar=%s): a faiss/nmslib field will "
            "crash this OpenSearch node; use engine lucene",
            cc, javap.is_file(), bool(jars),
        )  # fmt: skip
        return False
    with tempfile.TemporaryDirectory(prefix="knnstub-") as tmp:
        work = Path(tmp)
        with zipfile.ZipFile(jars[0]) as zf:
            names = [n for n in zf.namelist() if n.startswith(_JNI_PACKAGE) and n.endswith(".class") and "$" not in n]
            zf.extractall(work / "classes", members=names)
        methods: list[NativeMethod] = []
        for entry in names:
            class_name = entry[: -len(".class")]
            out = subprocess.run(
                [str(javap), "-p", "-s", "-cp", str(work / "classes"), class_name.replace("/", ".")],
                capture_output=True, text=True, check=True, timeout=120,
            ).stdout  # fmt: skip
            methods.extend(parse_javap_natives(class_name, out))
        source = work / "knnstub.c"
        source.write_text(render_stub_source(methods), encoding="utf-8")
        library = work / "libknnstub.so"
        include = java_home / "include"
        subprocess.run(
            [cc, "-shared", "-fPIC", "-O1", f"-I{include}", f"-I{include / 'linux'}", "-o", str(library), str(source)],
            capture_output=True, text=True, check=True, timeout=300,
        )  # fmt: skip
        lib_dir = plugin_dir / "lib"
        lib_dir.mkdir(exist_ok=True)
        for name in KNN_LIBRARY_NAMES:
            shutil.copy2(library, lib_dir / f"lib{name}.so")
    logger.info("installed k-NN stand-in libraries (%d native methods) in %s", len(methods), lib_dir)
    return True
