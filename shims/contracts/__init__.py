"""One contract per Runnerly feature: a small Protocol plus its frozen dataclasses.

The monolith's views only ever call these. `Local<Feature>` implementations live
with the monolith; remote clients and extracted services honour the same shapes.
Input dataclasses have a `parse(mapping)` constructor that validates untrusted
data and raises `ValidationError` naming the field, so both sides refuse bad
input alike.
"""
