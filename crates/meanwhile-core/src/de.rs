//! Decoding helpers that make the request types accept exactly what their JSON Schema
//! says: an object only where an object is meant (serde's derive also takes a JSON
//! array for a struct), and an integer also when it is written `7.0` (JSON Schema
//! counts `7.0` as the integer 7, and generated clients send it so).

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A `T` that must be written as a JSON object.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object(d).map(Object)
    }
}

/// Deserializes a struct from a JSON object only.
pub(crate) fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(V(PhantomData))
}

/// Deserializes an optional struct from a JSON object or null.
pub(crate) fn opt_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Object<T>>::deserialize(d)?.map(|o| o.0))
}

/// Deserializes a list of structs, each from a JSON object.
pub(crate) fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Object<T>>::deserialize(d)?
        .into_iter()
        .map(|o| o.0)
        .collect())
}

/// An integer type that [`int`] can decode.
pub(crate) trait Integer: Sized + TryFrom<i128> {
    /// What to call it in an error.
    const WHAT: &'static str;
}

macro_rules! integer {
    ($($t:ty => $what:expr),*) => {$(
        impl Integer for $t {
            const WHAT: &'static str = $what;
        }
    )*};
}
integer!(i32 => "an integer", i64 => "an integer", u16 => "a whole number", u32 => "a whole number", u64 => "a whole number");

struct IntVisitor<T>(PhantomData<T>);

impl<T: Integer> IntVisitor<T> {
    fn from_i128<E: de::Error>(v: i128) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range for {}", T::WHAT)))
    }
}

impl<T: Integer> Visitor<'_> for IntVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::WHAT)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Self::from_i128(i128::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Self::from_i128(i128::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if v.fract() != 0.0 || !v.is_finite() {
            return Err(E::invalid_type(de::Unexpected::Float(v), &self));
        }
        // serde_json reads an integer too large for i64 and u64 as a float, rounded:
        // -9223372036854775809 becomes -2^63. A float at or beyond 2^63 may be such a
        // rounded integer, so it is out of range rather than silently moved.
        if v.abs() >= 2f64.powi(63) {
            return Err(E::custom(format!("{v} is out of range for {}", T::WHAT)));
        }
        Self::from_i128(v as i128)
    }
}

/// Deserializes an integer written `7` or `7.0`.
pub(crate) fn int<'de, D: Deserializer<'de>, T: Integer>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(IntVisitor(PhantomData))
}

/// An integer decoded with [`int`], for use inside options and lists.
struct Int<T>(T);

impl<'de, T: Integer> Deserialize<'de> for Int<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int(d).map(Int)
    }
}

/// Deserializes an optional integer written `7` or `7.0`, or null.
pub(crate) fn opt_int<'de, D: Deserializer<'de>, T: Integer>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<Int<T>>::deserialize(d)?.map(|i| i.0))
}

/// Deserializes a list of integers, each written `7` or `7.0`.
pub(crate) fn ints<'de, D: Deserializer<'de>, T: Integer>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Int<T>>::deserialize(d)?
        .into_iter()
        .map(|i| i.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default, deserialize_with = "opt_int")]
        n: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default, deserialize_with = "opt_object")]
        inner: Option<Inner>,
        #[serde(default, deserialize_with = "objects")]
        list: Vec<Inner>,
        #[serde(default)]
        ids: Vec<crate::TaskId>,
    }

    fn check(json: &str, expect: Result<Outer, &str>) {
        let got = serde_json::from_str::<Outer>(json).map_err(|e| e.to_string());
        match (got, expect) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "{json}"),
            (Err(g), Err(e)) => assert!(g.contains(e), "{json}: {g}"),
            (g, e) => panic!("{json}: got {g:?}, expected {e:?}"),
        }
    }

    #[test]
    fn objects_only_where_objects_are_meant() {
        check(
            r#"{"inner": {"n": 3}, "list": [{}], "ids": [1, 2.0]}"#,
            Ok(Outer {
                inner: Some(Inner { n: Some(3) }),
                list: vec![Inner::default()],
                ids: vec![crate::TaskId(1), crate::TaskId(2)],
            }),
        );
        check(r#"{"inner": [null]}"#, Err("expected a JSON object"));
        check(r#"{"list": [[null]]}"#, Err("expected a JSON object"));
        check(
            r#"{"inner": {"n": 7.0}}"#,
            Ok(Outer {
                inner: Some(Inner { n: Some(7) }),
                list: vec![],
                ids: vec![],
            }),
        );
        check(r#"{"inner": {"n": 7.5}}"#, Err("expected a whole number"));
        check(r#"{"inner": {"n": -1}}"#, Err("out of range"));
        check(r#"{"inner": {"n": 1e300}}"#, Err("out of range"));
        check(r#"{"ids": [9223372036854775808]}"#, Err("out of range"));
        check(r#"{"ids": [-9223372036854775809]}"#, Err("out of range"));
    }
}
