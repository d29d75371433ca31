"""Schema cases for the grammar converter: each has JSON texts the grammar must accept to
completion (`ok`) and texts it must reject (`bad`). Shared by the tests and by
bench/grammar_vs_builtin.py (which uses the schemas only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    id: str
    schema: Any
    ok: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)


def _c(id: str, schema: Any, ok: list[str], bad: list[str]) -> Case:
    return Case(id, schema, ok, bad)


OBJ_AB = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}}

TAGS = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
UNIQUE_CASES: list[Case] = [
    _c("unique-tags", {"type": "object", "properties": {"tags": {**TAGS, "minItems": 2}},
                       "required": ["tags"]},
       ['{"tags":["a","b"]}'], ['{"tags":["a"]}']),
    _c("unique-enum-picks",
       {"type": "array", "uniqueItems": True, "minItems": 2, "maxItems": 3,
        "items": {"enum": ["red", "green", "blue", "yellow"]}},
       ['["red","blue"]'], ['["red"]', '["red","pink"]']),
    _c("unique-integers", {"type": "array", "items": {"type": "integer"}, "uniqueItems": True,
                           "minItems": 3},
       ["[1,2,3]"], ["[1,2]"]),
    _c("unique-small-objects",
       {"type": "array", "uniqueItems": True, "minItems": 2,
        "items": {"type": "object", "additionalProperties": False, "required": ["k", "v"],
                  "properties": {"k": {"type": "string"}, "v": {"type": "integer"}}}},
       ['[{"k":"a","v":1},{"k":"a","v":2}]'], ['[{"k":"a"}]']),
    _c("unique-nested-ref",
       {"$defs": {"kw": {"type": "array", "items": {"type": "string", "maxLength": 12},
                         "uniqueItems": True, "minItems": 3, "maxItems": 6}},
        "type": "object", "required": ["title", "keywords"],
        "properties": {"title": {"type": "string", "maxLength": 40},
                       "keywords": {"$ref": "#/$defs/kw"}}},
       ['{"title":"t","keywords":["a","b","c"]}'], ['{"title":"t","keywords":["a"]}']),
    _c("unique-anyof",
       {"anyOf": [{"type": "null"},
                  {"type": "object", "required": ["categories"],
                   "properties": {"categories": {"type": "array", "uniqueItems": True,
                                                 "minItems": 2,
                                                 "items": {"enum": ["a", "b", "c"]}}}}]},
       ['null', '{"categories":["c","a"]}'], ['{"categories":["d","a"]}']),
]

CASES: list[Case] = [
    # --- plain types ---
    _c(
        "string",
        {"type": "string"},
        ['"hi"', '""', r'"a\"b\\c\n\u00e9"', '"é ✓"'],
        ["hi", '"a', '"a"b"', "1", '"\x01"'],
    ),
    _c("integer", {"type": "integer"}, ["0", "-7", "123456789"], ["01", "-0", "1.5", '"1"', "-"]),
    _c(
        "number",
        {"type": "number"},
        ["0", "-1.25", "3e5", "1.0E-3", "10"],
        ["1.", ".5", "01", "+1", "1e"],
    ),
    _c("boolean", {"type": "boolean"}, ["true", "false"], ["True", "1", "null"]),
    _c("null", {"type": "null"}, ["null"], ["None", "nul", '"null"']),
    _c("object-any", {"type": "object"}, ["{}", '{"x": [1, {"y": null}]}'], ["[]", "{", '{"x"}']),
    _c("array-any", {"type": "array"}, ["[]", '[1, "a", [true], {}]'], ["{}", "[1,]", "[,1]"]),
    _c("type-list", {"type": ["string", "null"]}, ['"x"', "null"], ["1", "true"]),
    _c("type-list-2", {"type": ["integer", "boolean"]}, ["5", "false"], ["1.5", '"5"', "null"]),
    _c("type-int-number", {"type": ["integer", "number"]}, ["5", "1.5"], ['"5"']),
    _c(
        "nullable-anyof",
        {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
        ["3", "null"],
        ['"3"', "-1"],
    ),
    # --- any value ---
    _c("empty", {}, ["1", '"s"', "null", '{"a": [1, 2]}', "[]"], ["", "{", "nope"]),
    _c(
        "description-only",
        {"description": "whatever you like"},
        ["true", '{"k": "v"}'],
        ["tru", "[1,"],
    ),
    _c("true-schema", True, ["[1]", "0"], ["]"]),
    # --- const / enum -------------------------------------------------------------------------
    _c("const-str", {"const": "fixed"}, ['"fixed"'], ['"fixe"', '"fixedd"', '"Fixed"']),
    _c(
        "const-escapes",
        {"const": 'a"b\\c\nd\te/'},
        [r'"a\"b\\c\nd\te/"'],
        [r'"a\"b\\c\\nd\te/"', r'"a"b\\c\nd\te/"', r'"a\"b\c\nd\te/"'],
    ),
    _c("const-unicode", {"const": "héllo ✓ 𝄞"}, ['"héllo ✓ 𝄞"'], ['"hello ✓ 𝄞"']),
    _c("const-brackets", {"const": "[x] {y} #z"}, ['"[x] {y} #z"'], ['"[x] {y}"']),
    _c("const-number", {"const": 42}, ["42"], ["43", "42.0", '"42"']),
    _c("const-object", {"const": {"a": [1, None]}}, ['{"a":[1,null]}'], ['{"a":[1]}', "{}"]),
    _c("const-null", {"const": None}, ["null"], ['"null"']),
    _c("enum-str", {"enum": ["red", "green", "blue"]}, ['"red"', '"blue"'], ['"Red"', '"yellow"']),
    _c(
        "enum-prefixes",
        {"enum": ["a", "ab", "abc"]},
        ['"a"', '"ab"', '"abc"'],
        ['"abcd"', '"b"', '""'],
    ),
    _c(
        "enum-mixed",
        {"enum": [1, "one", None, True, 2.5]},
        ["1", '"one"', "null", "true", "2.5"],
        ["2", "false", '"two"'],
    ),
    _c(
        "enum-escapes",
        {"enum": ["back\\slash", 'quo"te', "new\nline"]},
        [r'"back\\slash"', r'"quo\"te"', r'"new\nline"'],
        [r'"back\slash"', '"quo"te"'],
    ),
    _c("enum-typed", {"type": "string", "enum": ["a", 1, "b"]}, ['"a"', '"b"'], ["1"]),
    # --- string lengths ---
    _c("minlength", {"type": "string", "minLength": 2}, ['"ab"', '"abcdef"'], ['""', '"a"']),
    _c("maxlength", {"type": "string", "maxLength": 3}, ['""', '"abc"', r'"\n\"x"'], ['"abcd"']),
    _c(
        "min-max-length",
        {"type": "string", "minLength": 2, "maxLength": 4},
        ['"ab"', '"abcd"', '"éé"'],
        ['"a"', '"abcde"'],
    ),
    _c(
        "exact-length",
        {"type": "string", "minLength": 3, "maxLength": 3},
        ['"abc"'],
        ['"ab"', '"abcd"'],
    ),
    # --- patterns ---
    _c(
        "pattern-anchored",
        {"type": "string", "pattern": "^[a-z]+$"},
        ['"abc"'],
        ['"abc1"', '""', '"ABC"'],
    ),
    _c(
        "pattern-contains",
        {"type": "string", "pattern": "cat"},
        ['"cat"', '"a cat here"'],
        ['"dog"', '"ca t"'],
    ),
    _c(
        "pattern-prefix",
        {"type": "string", "pattern": "^id-"},
        ['"id-"', '"id-42x"'],
        ['"xid-1"', '"id"'],
    ),
    _c(
        "pattern-suffix",
        {"type": "string", "pattern": r"\.json$"},
        ['"a.json"', '".json"'],
        ['"a.jsonx"', '"ajson"'],
    ),
    _c(
        "pattern-noncapture",
        {"type": "string", "pattern": "^(?:ab)+c$"},
        ['"abc"', '"ababc"'],
        ['"c"', '"abac"'],
    ),
    _c(
        "pattern-alternation",
        {"type": "string", "pattern": "^(cat|dog|bird)s?$"},
        ['"cat"', '"dogs"', '"bird"'],
        ['"cow"', '"catss"'],
    ),
    _c(
        "pattern-top-alternation",
        {"type": "string", "pattern": "^a$|^b+$"},
        ['"a"', '"bbb"'],
        ['"ab"', '""'],
    ),
    _c(
        "pattern-class-dash",
        {"type": "string", "pattern": r"^[\w\-]+$"},
        ['"a-b_c9"', '"-"'],
        ['"a b"', '"a.b"'],
    ),
    _c(
        "pattern-class-dash-end",
        {"type": "string", "pattern": "^[a-c-]{2}$"},
        ['"a-"', '"-c"'],
        ['"ad"', '"a"'],
    ),
    _c(
        "pattern-digits",
        {"type": "string", "pattern": r"^\d{3}-\d{4}$"},
        ['"555-1234"'],
        ['"55-1234"', '"5555-1234"', '"abc-defg"'],
    ),
    _c(
        "pattern-brace-ranges",
        {"type": "string", "pattern": "^x{2,}y{1,3}z{0,1}$"},
        ['"xxy"', '"xxxxyyyz"'],
        ['"xy"', '"xxyyyy"', '"xxyzz"'],
    ),
    _c(
        "pattern-space-class",
        {"type": "string", "pattern": r"^\w+\s\w+$"},
        ['"hello world"', r'"a\tb"'],
        ['"helloworld"', '"a  b"'],
    ),
    _c(
        "pattern-negated",
        {"type": "string", "pattern": "^[^0-9]*$"},
        ['"abc"', '""', '"a b!"'],
        ['"a1"'],
    ),
    _c(
        "pattern-dot",
        {"type": "string", "pattern": "^a.c$"},
        ['"abc"', '"a-c"', '"a\\"c"'],
        ['"ac"', r'"a\nc"'],
    ),
    _c(
        "pattern-escaped-quote",
        {"type": "string", "pattern": '^say "[a-z]+"$'},
        [r'"say \"hi\""'],
        ['"say hi"', r'"say \"HI\""'],
    ),
    _c(
        "pattern-escaped-backslash",
        {"type": "string", "pattern": r"^C:\\[a-z]+$"},
        [r'"C:\\dir"'],
        [r'"C:dir"', r'"C:\dir"'],
    ),
    _c(
        "pattern-escaped-meta",
        {"type": "string", "pattern": r"^\(\d+\)\.\*\[\]\{\}\?$"},
        ['"(12).*[]{}?"'],
        ['"12.*[]{}?"', '"(12)x*[]{}?"'],
    ),
    _c(
        "pattern-optional-group",
        {"type": "string", "pattern": r"^v\d+(\.\d+)?$"},
        ['"v1"', '"v1.25"'],
        ['"v"', '"v1."'],
    ),
    _c(
        "pattern-unicode", {"type": "string", "pattern": "^é+ü?$"}, ['"éé"', '"éü"'], ['"e"', '"ü"']
    ),
    _c("pattern-hex-escape", {"type": "string", "pattern": r"^\x41\u0042$"}, ['"AB"'], ['"ab"']),
    _c("pattern-lazy", {"type": "string", "pattern": "^a+?b*?$"}, ['"aab"', '"a"'], ['"b"']),
    _c(
        "pattern-nested-groups",
        {"type": "string", "pattern": "^((a|b)(c|d)){2}$"},
        ['"acbd"', '"adad"'],
        ['"ac"', '"acbdac"', '"aa"'],
    ),
    _c(
        "pattern-phone",
        {"type": "string", "pattern": r"^\+?[0-9 ]{7,12}$"},
        ['"+44 20 7946"', '"1234567"'],
        ['"12345"', '"+44-20"'],
    ),
    # --- formats ---
    _c(
        "format-date",
        {"type": "string", "format": "date"},
        ['"2024-02-29"', '"1999-12-31"'],
        ['"2024-13-01"', '"2024-1-01"', '"24-01-01"', '"2024-01-32"'],
    ),
    _c(
        "format-time",
        {"type": "string", "format": "time"},
        ['"12:30:00Z"', '"23:59:59.123+02:00"'],
        ['"24:00:00Z"', '"12:30"', '"12:60:00Z"'],
    ),
    _c(
        "format-date-time",
        {"type": "string", "format": "date-time"},
        ['"2024-05-01T08:00:00Z"', '"2024-05-01T08:00:00.5-05:30"'],
        ['"2024-05-01 08:00:00"', '"2024-05-01"', '"2024-05-01T08:00:00"'],
    ),
    _c(
        "format-uuid",
        {"type": "string", "format": "uuid"},
        ['"123e4567-e89b-12d3-a456-426614174000"'],
        ['"123e4567e89b12d3a456426614174000"', '"123e4567-e89b-12d3-a456-42661417400g"'],
    ),
    _c(
        "format-email",
        {"type": "string", "format": "email"},
        ['"a.b+c@example.com"', '"x@y.co.uk"'],
        ['"no-at-sign"', '"@example.com"', '"a@b"'],
    ),
    _c(
        "format-ipv4",
        {"type": "string", "format": "ipv4"},
        ['"192.168.0.1"', '"255.255.255.0"'],
        ['"256.1.1.1"', '"1.2.3"', '"01.2.3.4x"'],
    ),
    # --- integer ranges ---
    _c(
        "int-min-max",
        {"type": "integer", "minimum": 1, "maximum": 12},
        ["1", "9", "10", "12"],
        ["0", "13", "-1", "100", "012"],
    ),
    _c(
        "int-min",
        {"type": "integer", "minimum": 18},
        ["18", "19", "99", "100", "123456"],
        ["17", "0", "-18", "9"],
    ),
    _c("int-max", {"type": "integer", "maximum": -3}, ["-3", "-4", "-1000"], ["-2", "0", "3"]),
    _c(
        "int-exclusive",
        {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 100},
        ["1", "50", "99"],
        ["0", "100", "-5"],
    ),
    _c(
        "int-neg-range",
        {"type": "integer", "minimum": -15, "maximum": 230},
        ["-15", "-9", "0", "7", "99", "199", "229", "230"],
        ["-16", "-20", "231", "240", "300"],
    ),
    _c(
        "int-big-range",
        {"type": "integer", "minimum": 1000, "maximum": 987654},
        ["1000", "5000", "987654", "987599", "10000"],
        ["999", "987655", "988000", "9999999"],
    ),
    _c("int-single", {"type": "integer", "minimum": 7, "maximum": 7}, ["7"], ["6", "8", "70"]),
    _c("int-min-zero", {"type": "integer", "minimum": 0}, ["0", "5", "10"], ["-1", "-0", "00"]),
    _c(
        "int-float-bounds",
        {"type": "integer", "minimum": 1.5, "maximum": 4.5},
        ["2", "4"],
        ["1", "5"],
    ),
    # --- number ranges ---
    _c(
        "num-min-max",
        {"type": "number", "minimum": 0, "maximum": 1},
        ["0", "1", "0.5", "0.999"],
        ["-0.5", "2", "1.5", "-1"],
    ),
    _c(
        "num-negative",
        {"type": "number", "minimum": -10.5, "maximum": -2},
        ["-10", "-2", "-3.75", "-10.5"],
        ["2", "-11", "0", "-1.5"],
    ),
    _c(
        "num-exclusive",
        {"type": "number", "exclusiveMinimum": 0},
        ["0.1", "5", "3.5"],
        ["0", "-1", "-0.5"],
    ),
    # --- arrays ---
    _c(
        "array-items",
        {"type": "array", "items": {"type": "integer"}},
        ["[]", "[1, 2, 3]"],
        ['["a"]', "[1,", "[1.5]"],
    ),
    _c(
        "array-min-max",
        {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 3},
        ["[true]", "[true,false,true]"],
        ["[]", "[true,true,true,true]"],
    ),
    _c(
        "array-exact",
        {"type": "array", "items": {"type": "null"}, "minItems": 2, "maxItems": 2},
        ["[null,null]", "[null, null]"],
        ["[null]", "[null,null,null]"],
    ),
    _c(
        "array-min-only",
        {"type": "array", "items": {"type": "integer"}, "minItems": 2},
        ["[1,2]", "[1,2,3,4,5]"],
        ["[1]", "[]"],
    ),
    _c(
        "prefix-items",
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
        ['["a",1]', '["a"]', "[]"],
        ['[1,"a"]', '["a",1,2]'],
    ),
    _c(
        "prefix-items-rest",
        {
            "type": "array",
            "prefixItems": [{"const": "x"}],
            "items": {"type": "integer"},
            "minItems": 2,
        },
        ['["x",1]', '["x",1,2]'],
        ['["x"]', '["y",1]', '["x","y"]'],
    ),
    _c(
        "tuple-draft7",
        {
            "type": "array",
            "items": [{"type": "integer"}, {"type": "boolean"}],
            "additionalItems": False,
            "minItems": 2,
        },
        ["[1,true]"],
        ["[1]", "[1,true,2]", "[true,1]"],
    ),
    _c(
        "array-nested",
        {"type": "array", "items": {"type": "array", "items": {"type": "integer"}, "maxItems": 2}},
        ["[[1,2],[],[3]]"],
        ["[[1,2,3]]", "[1]"],
    ),
    _c(
        "array-of-objects",
        {"type": "array", "items": OBJ_AB, "maxItems": 2},
        ['[{"a":1},{"b":"x"}]', "[{}]"],
        ['[{"c":1}]', "[{},{},{}]"],
    ),
    # --- objects ---
    _c(
        "obj-required",
        {**OBJ_AB, "required": ["a", "b"]},
        ['{"a":1,"b":"x"}', '{"a": 1, "b": ""}'],
        ['{"a":1}', '{"b":"x","a":1}', "{}"],
    ),
    _c(
        "obj-optional",
        OBJ_AB,
        ["{}", '{"a":1}', '{"b":"x"}', '{"a":1,"b":"x"}'],
        ['{"a":1,}', '{,"b":"x"}', '{"c":1}', '{"a":"1"}'],
    ),
    _c(
        "obj-order",
        {
            "type": "object",
            "properties": {"z": {"type": "integer"}, "a": {"type": "integer"}},
            "required": ["z", "a"],
        },
        ['{"z":1,"a":2}'],
        ['{"a":2,"z":1}'],
    ),
    _c("obj-addl-false", {**OBJ_AB, "additionalProperties": False}, ['{"a":1}'], ['{"a":1,"c":2}']),
    _c(
        "obj-addl-true",
        {**OBJ_AB, "required": ["a"], "additionalProperties": True},
        ['{"a":1}', '{"a":1,"c":[1]}', '{"a":1,"b":"x","zz":null}'],
        ['{"a":1,"b":2}', '{"a":1,"a":2}'],
    ),
    _c(
        "obj-addl-schema",
        {"type": "object", "additionalProperties": {"type": "integer"}},
        ["{}", '{"x":1,"y":2}', '{"":3}'],
        ['{"x":"1"}'],
    ),
    _c(
        "obj-addl-not-declared-name",
        {
            "type": "object",
            "properties": {"ab": {"type": "string"}},
            "additionalProperties": {"type": "integer"},
        },
        ['{"ab":"s","a":1,"abc":2,"b":3}'],
        ['{"ab":1}', '{"x":1,"ab":2}'],
    ),
    _c(
        "obj-empty-name",
        {
            "type": "object",
            "properties": {"": {"type": "integer"}, "x": {"type": "integer"}},
            "required": [""],
        },
        ['{"":1}', '{"":1,"x":2}'],
        ["{}", '{"x":2}'],
    ),
    _c(
        "obj-common-prefix",
        {
            "type": "object",
            "properties": {
                "a": {"type": "integer"},
                "ab": {"type": "boolean"},
                "abc": {"type": "null"},
            },
            "required": ["a", "ab", "abc"],
        },
        ['{"a":1,"ab":true,"abc":null}'],
        ['{"a":1,"ab":1,"abc":null}', '{"a":1,"abc":null}'],
    ),
    _c(
        "obj-escaped-names",
        {
            "type": "object",
            "properties": {
                'q"uote': {"type": "integer"},
                "back\\slash": {"type": "integer"},
                "ünï": {"type": "integer"},
            },
            "required": ['q"uote', "back\\slash", "ünï"],
        },
        [r'{"q\"uote":1,"back\\slash":2,"ünï":3}'],
        ['{"quote":1,"backslash":2,"uni":3}'],
    ),
    _c(
        "obj-required-undeclared",
        {"type": "object", "required": ["id"]},
        ['{"id":5}'],
        ["{}", '{"x":1}'],
    ),
    _c(
        "obj-nested",
        {
            "type": "object",
            "properties": {
                "user": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "age": {"type": "integer", "minimum": 0},
                    },
                    "required": ["name", "age"],
                }
            },
            "required": ["user"],
        },
        ['{"user":{"name":"Ann","age":30}}'],
        ['{"user":{"name":"Ann","age":-1}}', '{"user":{}}'],
    ),
    _c(
        "obj-implied",
        {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
        ['{"a":1}'],
        ["1", '{"a":"x"}'],
    ),
    _c(
        "obj-whitespace",
        {**OBJ_AB, "required": ["a", "b"]},
        ['{\n  "a": 1,\n  "b": "x"\n}', '{ "a" : 1 , "b" : "x" }'],
        ['{"a":      1,"b":"x"}', '{\n\n\n"a":1,"b":"x"}'],
    ),
    _c(
        "obj-false-prop",
        {
            "type": "object",
            "properties": {"a": False, "b": {"type": "integer"}},
            "additionalProperties": {"type": "string"},
        },
        ['{"b":1}', '{"c":"x"}'],
        ['{"a":1}', '{"a":"x"}'],
    ),
    # --- refs ---
    _c(
        "ref-definitions",
        {
            "definitions": {"pos": {"type": "integer", "minimum": 1}},
            "type": "array",
            "items": {"$ref": "#/definitions/pos"},
        },
        ["[1,2]"],
        ["[0]", '["1"]'],
    ),
    _c(
        "ref-defs",
        {
            "$defs": {"name": {"type": "string", "maxLength": 3}},
            "type": "object",
            "properties": {"n": {"$ref": "#/$defs/name"}},
            "required": ["n"],
        },
        ['{"n":"abc"}'],
        ['{"n":"abcd"}'],
    ),
    _c(
        "ref-recursive-list",
        {
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {
                        "v": {"type": "integer"},
                        "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
                    },
                    "required": ["v", "next"],
                }
            },
            "$ref": "#/$defs/node",
        },
        ['{"v":1,"next":{"v":2,"next":null}}'],
        ['{"v":1,"next":{"v":2}}', '{"v":1}'],
    ),
    _c(
        "ref-recursive-tree",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#"}},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
        ['{"name":"r","children":[{"name":"c","children":[]}]}'],
        ['{"name":"r","children":[{}]}'],
    ),
    _c(
        "ref-escaped-pointer",
        {
            "$defs": {"a/b": {"const": 1}, "c~d": {"const": 2}},
            "type": "array",
            "prefixItems": [{"$ref": "#/$defs/a~1b"}, {"$ref": "#/$defs/c~0d"}],
        },
        ["[1,2]"],
        ["[2,1]"],
    ),
    _c(
        "ref-with-siblings",
        {"$defs": {"s": {"type": "string"}}, "$ref": "#/$defs/s", "maxLength": 2},
        ['"ab"'],
        ['"abc"', "1"],
    ),
    # --- combinators ---
    _c(
        "anyof",
        {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 2}]},
        ["5", '"ab"'],
        ['"abc"', "true"],
    ),
    _c(
        "oneof",
        {
            "oneOf": [
                {"const": "x"},
                {"type": "object", "properties": {"y": {"type": "integer"}}, "required": ["y"]},
            ]
        },
        ['"x"', '{"y":1}'],
        ['"y"', "{}"],
    ),
    _c(
        "anyof-in-property",
        {
            "type": "object",
            "properties": {"v": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
            "required": ["v"],
        },
        ['{"v":1}', '{"v":null}'],
        ['{"v":"1"}'],
    ),
    _c(
        "anyof-siblings",
        {
            "type": "object",
            "required": ["k"],
            "anyOf": [{"properties": {"k": {"const": "a"}}}, {"properties": {"k": {"const": "b"}}}],
        },
        ['{"k":"a"}', '{"k":"b"}'],
        ['{"k":"c"}'],
    ),
    _c(
        "allof-merge",
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "string"}}, "required": ["b"]},
            ]
        },
        ['{"a":1,"b":"x"}'],
        ['{"a":1}', '{"b":"x"}'],
    ),
    _c(
        "allof-enums",
        {"allOf": [{"enum": ["a", "b", "c"]}, {"enum": ["b", "c", "d"]}]},
        ['"b"', '"c"'],
        ['"a"', '"d"', "{}"],
    ),
    _c(
        "allof-ref",
        {
            "$defs": {
                "base": {
                    "type": "object",
                    "properties": {"id": {"type": "integer"}},
                    "required": ["id"],
                }
            },
            "allOf": [
                {"$ref": "#/$defs/base"},
                {"properties": {"tag": {"const": "t"}}, "required": ["tag"]},
            ],
        },
        ['{"id":1,"tag":"t"}'],
        ['{"id":1}', '{"tag":"t"}'],
    ),
    _c(
        "allof-bounds",
        {"allOf": [{"type": "integer", "minimum": 0}, {"maximum": 5}, {"minimum": 2}]},
        ["2", "5"],
        ["1", "6"],
    ),
    _c(
        "allof-const-in-enum",
        {"allOf": [{"type": "string"}, {"const": "go"}]},
        ['"go"'],
        ['"stop"'],
    ),
    # --- realistic ---
    _c(
        "extract-person",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 40},
                "age": {"type": "integer", "minimum": 0, "maximum": 150},
                "email": {"type": "string", "format": "email"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        ['{"name":"Ann","age":31,"email":"ann@x.org","tags":["a"]}', '{"name":"B","age":0}'],
        ['{"name":"","age":1}', '{"name":"A","age":151}', '{"age":3,"name":"A"}'],
    ),
    _c(
        "tool-args",
        {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
        ['{"location":"Paris","unit":"celsius"}', '{"location":"Oslo"}'],
        ['{"location":"Paris","unit":"kelvin"}'],
    ),
    _c(
        "event",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "at": {"type": "string", "format": "date-time"},
                "level": {"enum": ["info", "warn", "error"]},
            },
            "required": ["id", "at", "level"],
        },
        [
            '{"id":"123e4567-e89b-12d3-a456-426614174000","at":"2024-01-01T00:00:00Z","level":"warn"}'
        ],
        ['{"id":"x","at":"2024-01-01T00:00:00Z","level":"warn"}'],
    ),
    # --- uniqueItems (issue 41): the grammar takes duplicates (`ok` may hold none, `bad` none
    # that only a duplicate makes bad); the engine refuses them while decoding ---
    *UNIQUE_CASES,
]

# Schemas refused with a 400 that names the keyword: (id, schema, param).
REFUSED: list[tuple[str, Any, str]] = [
    ("not", {"not": {"type": "string"}}, "not"),
    ("if-then", {"if": {"type": "string"}, "then": {"minLength": 1}}, "if"),
    (
        "pattern-properties",
        {"type": "object", "patternProperties": {"^x": {}}},
        "patternProperties",
    ),
    ("lookahead", {"type": "string", "pattern": "^(?=a)a+$"}, "pattern"),
    ("lookbehind", {"type": "string", "pattern": "(?<!x)y"}, "pattern"),
    ("backreference", {"type": "string", "pattern": r"^(a)\1$"}, "pattern"),
    ("word-boundary", {"type": "string", "pattern": r"\bword\b"}, "pattern"),
    ("external-ref", {"$ref": "https://example.com/s.json"}, "$ref"),
    ("missing-ref", {"$ref": "#/$defs/nope"}, "$ref"),
    (
        "left-recursive-ref",
        {"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}}, "$ref": "#/$defs/a"},
        "$ref",
    ),
    ("false-schema", False, "schema"),
    ("contains", {"type": "array", "contains": {"type": "integer"}}, "contains"),
    ("bad-type", {"type": "strin"}, "type"),
    ("bad-regex", {"type": "string", "pattern": "^(a$"}, "pattern"),
    ("not-a-schema", ["type", "string"], "schema"),
    ("int-empty-range", {"type": "integer", "minimum": 5, "maximum": 3}, "minimum"),
    ("allof-type-conflict", {"allOf": [{"type": "string"}, {"type": "integer"}]}, "allOf"),
    ("enum-none-fits", {"type": "integer", "enum": ["a", "b"]}, "enum"),
    ("unique-enum-too-few",
     {"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True, "minItems": 4},
     "uniqueItems"),
]

# Over-approximated keywords: the grammar accepts `text` though the schema does not; the
# post-generation check (validation_errors) must report it.
OVERAPPROX: list[tuple[str, Any, str]] = [
    ("multiple-of", {"type": "integer", "multipleOf": 5}, "7"),
    ("num-fraction-edge", {"type": "number", "maximum": 5.5}, "5.7"),
    ("date-feb-30", {"type": "string", "format": "date"}, '"2023-02-30"'),
    (
        "max-properties",
        {"type": "object", "additionalProperties": True, "maxProperties": 1},
        '{"a":1,"b":2}',
    ),
    (
        "allof-two-patterns",
        {"allOf": [{"type": "string", "pattern": "^a"}, {"type": "string", "pattern": "b$"}]},
        '"ax"',
    ),
]
