//! [`MemoryStore`]: an in-memory [`VectorStore`] that scans every point of a collection on each
//! search. It is exact, so it serves as the ground truth when measuring the recall of the
//! approximate (HNSW) backends, and as a dependency-free store in tests.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use uuid::Uuid;

use super::{check_vector, validate_collection, VectorError, VectorHit, VectorPoint, VectorStore};

/// Exact cosine search over collections held in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    collections: RwLock<HashMap<String, Collection>>,
}

/// One collection: unit-length vectors stored row by row, so a search is one linear pass.
#[derive(Debug)]
struct Collection {
    dimensions: usize,
    ids: Vec<Uuid>,
    rows: HashMap<Uuid, usize>,
    vectors: Vec<f32>,
}

impl Collection {
    fn new(dimensions: usize) -> Self {
        Self {
            dimensions,
            ids: Vec::new(),
            rows: HashMap::new(),
            vectors: Vec::new(),
        }
    }

    fn upsert(&mut self, id: Uuid, vector: &[f32]) {
        let unit = normalized(vector);
        match self.rows.get(&id) {
            Some(&row) => {
                let start = row * self.dimensions;
                self.vectors[start..start + self.dimensions].copy_from_slice(&unit);
            }
            None => {
                self.rows.insert(id, self.ids.len());
                self.ids.push(id);
                self.vectors.extend_from_slice(&unit);
            }
        }
    }

    fn delete(&mut self, id: &Uuid) {
        let Some(row) = self.rows.remove(id) else {
            return;
        };
        let last = self.ids.len() - 1;
        if row != last {
            // Keep rows dense: the last row moves into the hole.
            let moved = self.ids[last];
            self.vectors
                .copy_within(last * self.dimensions.., row * self.dimensions);
            self.ids[row] = moved;
            self.rows.insert(moved, row);
        }
        self.ids.pop();
        self.vectors.truncate(last * self.dimensions);
    }

    fn search(&self, query: &[f32], limit: usize) -> Vec<VectorHit> {
        if limit == 0 || self.ids.is_empty() {
            return Vec::new();
        }
        let query = normalized(query);
        let mut scored: Vec<(f32, usize)> = self
            .vectors
            .chunks_exact(self.dimensions)
            .map(|row| dot(row, &query))
            .zip(0..)
            .collect();
        // Best first; equal scores by id so results do not depend on insertion order.
        let order = |a: &(f32, usize), b: &(f32, usize)| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(Ordering::Equal)
                .then_with(|| self.ids[a.1].cmp(&self.ids[b.1]))
        };
        if limit < scored.len() {
            scored.select_nth_unstable_by(limit - 1, order);
            scored.truncate(limit);
        }
        scored.sort_unstable_by(order);
        scored
            .into_iter()
            .map(|(score, row)| VectorHit {
                id: self.ids[row],
                score,
            })
            .collect()
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The vector scaled to unit length; a zero vector stays zero (and scores 0 against anything).
fn normalized(vector: &[f32]) -> Vec<f32> {
    let norm = dot(vector, vector).sqrt();
    if norm > 0.0 {
        vector.iter().map(|x| x / norm).collect()
    } else {
        vector.to_vec()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Collection>> {
        // A panic elsewhere cannot leave a collection half-updated in a way that matters for
        // a test double, so a poisoned lock is used as is.
        self.collections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Collection>> {
        self.collections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl VectorStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn ensure_collection(
        &self,
        collection: &str,
        dimensions: usize,
    ) -> Result<(), VectorError> {
        validate_collection(collection)?;
        if dimensions == 0 {
            return Err(VectorError::Invalid(
                "a collection needs at least one dimension".into(),
            ));
        }
        let mut collections = self.write();
        match collections.get(collection) {
            Some(existing) if existing.dimensions != dimensions => {
                Err(VectorError::Invalid(format!(
                    "collection `{collection}` has {} dimensions, not {dimensions}",
                    existing.dimensions
                )))
            }
            Some(_) => Ok(()),
            None => {
                collections.insert(collection.to_owned(), Collection::new(dimensions));
                Ok(())
            }
        }
    }

    async fn upsert(&self, collection: &str, points: Vec<VectorPoint>) -> Result<(), VectorError> {
        validate_collection(collection)?;
        let mut collections = self.write();
        let target = collections
            .get_mut(collection)
            .ok_or_else(|| VectorError::MissingCollection(collection.to_owned()))?;
        for point in &points {
            check_vector(&point.vector, target.dimensions)?;
        }
        for point in &points {
            target.upsert(point.id, &point.vector);
        }
        Ok(())
    }

    async fn delete(&self, collection: &str, ids: &[Uuid]) -> Result<(), VectorError> {
        validate_collection(collection)?;
        if let Some(target) = self.write().get_mut(collection) {
            for id in ids {
                target.delete(id);
            }
        }
        Ok(())
    }

    async fn search(
        &self,
        collection: &str,
        vector: &[f32],
        limit: usize,
    ) -> Result<Vec<VectorHit>, VectorError> {
        validate_collection(collection)?;
        let collections = self.read();
        let target = collections
            .get(collection)
            .ok_or_else(|| VectorError::MissingCollection(collection.to_owned()))?;
        check_vector(vector, target.dimensions)?;
        Ok(target.search(vector, limit))
    }

    async fn count(&self, collection: &str) -> Result<u64, VectorError> {
        validate_collection(collection)?;
        Ok(self
            .read()
            .get(collection)
            .map_or(0, |c| c.ids.len() as u64))
    }

    async fn drop_collection(&self, collection: &str) -> Result<(), VectorError> {
        validate_collection(collection)?;
        self.write().remove(collection);
        Ok(())
    }

    async fn optimize(&self, collection: &str) -> Result<(), VectorError> {
        validate_collection(collection)?;
        if self.read().contains_key(collection) {
            Ok(())
        } else {
            Err(VectorError::MissingCollection(collection.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn conformance() {
        super::super::testing::conformance(Arc::new(MemoryStore::new())).await;
    }

    #[test]
    fn delete_keeps_other_rows_addressable() {
        let mut c = Collection::new(2);
        let ids: Vec<Uuid> = (1..=4u128).map(Uuid::from_u128).collect();
        for (i, id) in ids.iter().enumerate() {
            c.upsert(*id, &[i as f32 + 1.0, 1.0]);
        }
        c.delete(&ids[0]);
        c.delete(&ids[2]);
        c.delete(&Uuid::from_u128(99));
        assert_eq!(c.ids.len(), 2);
        assert_eq!(c.vectors.len(), 4);
        for id in [ids[1], ids[3]] {
            let row = c.rows[&id];
            assert_eq!(c.ids[row], id);
        }
        // The moved row still holds its own vector: searching for it finds it first at ~1.0.
        let hits = c.search(&[4.0, 1.0], 1);
        assert_eq!(hits[0].id, ids[3]);
        assert!((hits[0].score - 1.0).abs() < 1e-6);
    }

    #[test]
    fn top_k_is_exact_and_ordered() {
        let mut c = Collection::new(2);
        for i in 0..100u128 {
            let angle = i as f32 * 0.01;
            c.upsert(Uuid::from_u128(i + 1), &[angle.cos(), angle.sin()]);
        }
        let hits = c.search(&[1.0, 0.0], 5);
        let ids: Vec<u128> = hits.iter().map(|h| h.id.as_u128()).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(c.search(&[1.0, 0.0], 1000).len(), 100);
        assert!(c.search(&[1.0, 0.0], 0).is_empty());
    }
}
