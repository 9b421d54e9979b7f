"""Reading and validating the pipeline configuration tree (DESIGN.md §4).

The tree mirrors the manual's /opt/pipeline layout:

    alpha/sources/*.yaml          beta/transforms/rules/*.yaml   beta/quality/scoring.yaml
    beta/enrichment/*.yaml        gamma/destinations/*.yaml      gamma/routing/rules/*.yaml

plus the JSON Schema files named by a source's `validation.schema_ref` (looked up under alpha/,
then under the tree root). Loading never stops at the first problem: the operator gets every
error as (file, field, reason), files named relative to the tree root. A source's schema is
inlined into its spec at `validation.schema`, so an applied version never reads the disk again.
"""
import hashlib
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .checks import check_cross_file, check_item, check_secrets, check_structure, load_schema_file, parse_yaml
from .issues import (
    DESTINATION,
    ENRICHMENT,
    ID_FIELDS,
    QUALITY,
    ROUTING_RULE,
    SCHEMA,
    SOURCE,
    TRANSFORM_RULE,
    ConfigIssue,
)

# (kind, folder) of the tree; quality is one file.
LAYOUT: list[tuple[str, str]] = [
    (SOURCE, "alpha/sources"),
    (TRANSFORM_RULE, "beta/transforms/rules"),
    (ENRICHMENT, "beta/enrichment"),
    (DESTINATION, "gamma/destinations"),
    (ROUTING_RULE, "gamma/routing/rules"),
]
QUALITY_FILES = ("beta/quality/scoring.yaml", "beta/quality/scoring.yml")
SCHEMA_FOLDER = "alpha/schemas"
YAML_SUFFIXES = (".yaml", ".yml")

# Read bytes of a schema file for a source: (source file name, schema_ref) -> (shown name, bytes) or None.
SchemaReader = Callable[[str, str], tuple[str, bytes] | None]


@dataclass
class ConfigItem:
    """One parsed configuration file (a source, a rule, a destination, ...)."""

    kind: str
    file: str
    spec: dict

    @property
    def item_id(self) -> str | None:
        key = ID_FIELDS.get(self.kind)
        value = self.spec.get(key) if key else None
        return value if isinstance(value, str) else None


@dataclass
class LoadedConfig:
    """Everything read: the file texts (what a version stores and hashes) and the parsed items."""

    root: str
    files: dict[str, str] = field(default_factory=dict)
    items: list[ConfigItem] = field(default_factory=list)

    def of(self, kind: str) -> list[ConfigItem]:
        return [i for i in self.items if i.kind == kind]

    @property
    def quality(self) -> ConfigItem | None:
        found = self.of(QUALITY)
        return found[0] if found else None

    @property
    def sha256(self) -> str:
        return files_sha256(self.files)

    def counts(self) -> dict[str, int]:
        return {
            "sources": len(self.of(SOURCE)),
            "transform_rules": len(self.of(TRANSFORM_RULE)),
            "quality_profiles": len(self.of(QUALITY)),
            "enrichment_sources": len(self.of(ENRICHMENT)),
            "destinations": len(self.of(DESTINATION)),
            "routing_rules": len(self.of(ROUTING_RULE)),
        }


def files_sha256(files: dict[str, str]) -> str:
    """sha256 over the files sorted by relative path: path, NUL, bytes, NUL for each."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode("utf-8") + b"\0")
    return digest.hexdigest()


class ConfigLoader:
    """Collects files one by one, then runs the checks that span files."""

    def __init__(self, root: str, read_schema: SchemaReader):
        self.loaded = LoadedConfig(root=root)
        self.issues: list[ConfigIssue] = []
        self.read_schema = read_schema
        self.context_destinations: set[str] = set()  # known from outside the loaded files
        self.context_enrichment: set[str] = set()

    def add(self, name: str, kind: str | None, data: bytes) -> None:
        text = self._decode(name, data)
        if text is None:
            return
        self.loaded.files[name] = text
        if kind == SCHEMA:
            self.issues.extend(load_schema_file(name, text)[1])
            return
        spec, problems = parse_yaml(name, text)
        self.issues.extend(problems)
        if spec is None:
            return
        kind = kind or detect_kind(spec)
        if kind is None:
            self.issues.append(ConfigIssue(name, "", "cannot tell what this file configures (no source_id, rule_id, "
                                                     "quality_scoring, destination_id or enrichment_id)"))
            return
        file_issues = check_structure(name, kind, spec)
        file_issues.extend(check_secrets(name, spec))
        reported = {i.field for i in file_issues}
        for issue in check_item(name, kind, spec, self._schema_for(name)):
            if issue.field not in reported:
                file_issues.append(issue)
        self.issues.extend(file_issues)
        self.loaded.items.append(ConfigItem(kind=kind, file=name, spec=spec))

    def finish(self) -> tuple[LoadedConfig, list[ConfigIssue]]:
        self.issues.extend(check_cross_file(self.loaded.items, ID_FIELDS, self.context_destinations,
                                            self.context_enrichment))
        return self.loaded, self.issues

    def _decode(self, name: str, data: bytes) -> str | None:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.issues.append(ConfigIssue(name, "", f"not valid UTF-8 text (byte {exc.start})"))
            return None

    def _schema_for(self, name: str) -> Callable[[str], tuple[str, str] | ConfigIssue]:
        """What a source's check calls to read its schema_ref: (shown name, text) or the issue."""

        def read(ref: str) -> tuple[str, str] | ConfigIssue:
            found = self.read_schema(name, ref)
            if found is None:
                return ConfigIssue(name, "validation.schema_ref",
                                   f"schema file '{ref}' not found (looked under alpha/ and the tree root)")
            shown, data = found
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                return ConfigIssue(name, "validation.schema_ref", f"schema file '{shown}' is not valid UTF-8 text")
            self.loaded.files[shown] = text
            return shown, text

        return read


def detect_kind(spec: dict) -> str | None:
    """The kind of a file from its keys, for files given outside the tree layout."""
    if "quality_scoring" in spec:
        return QUALITY
    if "source_id" in spec:
        return SOURCE
    if "destination_id" in spec:
        return DESTINATION
    if "enrichment_id" in spec:
        return ENRICHMENT
    if "rule_id" in spec and "transform" in spec:
        return TRANSFORM_RULE
    if "rule_id" in spec and "destination" in spec:
        return ROUTING_RULE
    return None


def kind_from_folder(path: Path) -> str | None:
    """The kind of a file from the folder it sits in (…/sources/x.yaml is a source)."""
    if path.suffix == ".json":
        return SCHEMA
    parent, grandparent = path.parent.name, path.parent.parent.name
    if parent == "sources":
        return SOURCE
    if parent == "rules" and grandparent == "transforms":
        return TRANSFORM_RULE
    if parent == "rules" and grandparent == "routing":
        return ROUTING_RULE
    if parent == "quality" or path.name in ("scoring.yaml", "scoring.yml"):
        return QUALITY
    if parent == "enrichment":
        return ENRICHMENT
    if parent == "destinations":
        return DESTINATION
    return None


def schema_candidates(ref: str) -> list[str] | None:
    """Tree-relative paths where a schema_ref may be, or None when it points outside the tree."""
    if not ref or ref.startswith("/") or "\\" in ref:
        return None
    candidates = [posixpath.normpath(posixpath.join("alpha", ref)), posixpath.normpath(ref)]
    if any(c.startswith("../") or c == ".." for c in candidates):
        return None
    return candidates


def tree_files(root: Path) -> list[tuple[str, str]]:
    """(relative path, kind) of every configuration file in a tree, sorted."""
    found: list[tuple[str, str]] = []
    for kind, folder in LAYOUT:
        base = root / folder
        if base.is_dir():
            for path in sorted(base.iterdir()):
                if path.is_file() and path.suffix in YAML_SUFFIXES:
                    found.append((path.relative_to(root).as_posix(), kind))
    for name in QUALITY_FILES:
        if (root / name).is_file():
            found.append((name, QUALITY))
    return found


def _disk_schema_reader(root: Path) -> SchemaReader:
    resolved_root = root.resolve()

    def read(_source_file: str, ref: str) -> tuple[str, bytes] | None:
        for candidate in schema_candidates(ref) or []:
            path = (root / candidate).resolve()
            if path.is_relative_to(resolved_root) and path.is_file():
                return candidate, path.read_bytes()
        return None

    return read


def load_tree(root: str | Path) -> tuple[LoadedConfig, list[ConfigIssue]]:
    """Read and check a whole configuration tree on disk."""
    root = Path(root)
    loader = ConfigLoader(str(root), _disk_schema_reader(root))
    if not root.is_dir():
        loader.issues.append(ConfigIssue(str(root), "", "configuration directory does not exist"))
        return loader.finish()
    for name, kind in tree_files(root):
        try:
            data = (root / name).read_bytes()
        except OSError as exc:
            loader.issues.append(ConfigIssue(name, "", f"cannot read file ({exc.strerror})"))
            continue
        loader.add(name, kind, data)
    # Schemas nobody references yet are still part of the tree (versioned, hashed, drift-checked).
    schemas = root / SCHEMA_FOLDER
    for path in sorted(schemas.glob("*.json")) if schemas.is_dir() else []:
        name = path.relative_to(root).as_posix()
        if name not in loader.loaded.files:
            try:
                loader.loaded.files[name] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                loader.issues.append(ConfigIssue(name, "", f"cannot read file as UTF-8 text ({exc})"))
    return loader.finish()


def load_files(files: dict[str, str], root: str = "(stored version)") -> tuple[LoadedConfig, list[ConfigIssue]]:
    """Check a configuration held in memory ({relative path: text}, as a stored version keeps it)."""

    def read(_source_file: str, ref: str) -> tuple[str, bytes] | None:
        for candidate in schema_candidates(ref) or []:
            if candidate in files:
                return candidate, files[candidate].encode("utf-8")
        return None

    loader = ConfigLoader(root, read)
    by_name = {name: kind for kind, folder in LAYOUT for name in files if posixpath.dirname(name) == folder}
    by_name.update({name: QUALITY for name in files if name in QUALITY_FILES})
    for name in sorted(by_name):
        if name.endswith(YAML_SUFFIXES):
            loader.add(name, by_name[name], files[name].encode("utf-8"))
    loader.loaded.files = {**files, **loader.loaded.files}  # every stored file stays part of the version
    return loader.finish()


def is_tree_root(path: Path) -> bool:
    return path.is_dir() and any((path / module).is_dir() for module in ("alpha", "beta", "gamma"))


def _tree_of(path: Path) -> Path | None:
    """The tree root a single file belongs to, when it sits in the layout."""
    for parent in path.resolve().parents:
        if is_tree_root(parent) and path.resolve().relative_to(parent).parts[0] in ("alpha", "beta", "gamma"):
            return parent
    return None


def load_paths(paths: Iterable[str | Path], default_tree: str | Path | None = None) -> tuple[int, list[ConfigIssue]]:
    """Check files and folders as given on a command line; returns (files checked, issues).

    A folder that is a tree root is checked as a whole tree; any other folder and single files are
    checked file by file (kind from the folder they are in, else from their keys), then together
    (duplicate ids; routing rules against the destinations of the tree the files belong to).
    """
    paths = [Path(p) for p in paths]
    issues: list[ConfigIssue] = []
    checked = 0
    singles: list[Path] = []
    for path in paths:
        if is_tree_root(path):
            loaded, found = load_tree(path)
            prefix = str(path) if len(paths) > 1 else ""
            issues.extend(ConfigIssue(posixpath.join(prefix, i.file) if prefix else i.file, i.field, i.reason)
                          for i in found)
            checked += len(loaded.files)
        elif path.is_dir():
            singles.extend(p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix in (*YAML_SUFFIXES, ".json"))
        elif path.exists():
            singles.append(path)
        else:
            issues.append(ConfigIssue(str(path), "", "no such file or directory"))
    if not singles:
        return checked, issues

    def read_schema(source_file: str, ref: str) -> tuple[str, bytes] | None:
        # A source at <tree>/alpha/sources/x.yaml looks under <tree>/alpha/, then <tree>/.
        alpha = Path(source_file).parent.parent
        if schema_candidates(ref) is None:
            return None
        for target in (alpha / ref, alpha.parent / ref):
            if target.is_file():
                return str(target), target.read_bytes()
        return None

    loader = ConfigLoader("", read_schema)
    trees = {t for t in (_tree_of(p) for p in singles) if t is not None}
    if not trees and default_tree is not None and Path(default_tree).is_dir():
        trees = {Path(default_tree)}
    for tree in trees:
        loaded, _ = load_tree(tree)
        loader.context_destinations |= {i.item_id for i in loaded.of(DESTINATION) if i.item_id}
        loader.context_enrichment |= {i.item_id for i in loaded.of(ENRICHMENT) if i.item_id}
    for path in singles:
        try:
            data = path.read_bytes()
        except OSError as exc:
            issues.append(ConfigIssue(str(path), "", f"cannot read file ({exc.strerror})"))
            continue
        loader.add(str(path), kind_from_folder(path), data)
        checked += 1
    _, found = loader.finish()
    return checked, issues + found
