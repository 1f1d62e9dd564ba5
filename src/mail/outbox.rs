//! An in-memory mailer: messages are kept, newest last, for tests and the demo's outbox page.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{Mail, MailError, Mailer};

/// Keeps every message in memory (at most [`Outbox::CAPACITY`], oldest dropped first).
/// `Clone` shares the same box.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    mails: Arc<Mutex<VecDeque<Mail>>>,
}

impl Outbox {
    /// How many messages are kept.
    pub const CAPACITY: usize = 1000;

    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every kept message, oldest first.
    pub fn all(&self) -> Vec<Mail> {
        self.mails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// The newest message to `to` (compared case-insensitively), if any.
    pub fn last_to(&self, to: &str) -> Option<Mail> {
        self.mails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .rev()
            .find(|m| m.to.eq_ignore_ascii_case(to))
            .cloned()
    }

    /// How many messages are kept.
    pub fn len(&self) -> usize {
        self.mails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the outbox is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let mut mails = self.mails.lock().unwrap_or_else(PoisonError::into_inner);
        if mails.len() >= Self::CAPACITY {
            mails.pop_front();
        }
        mails.push_back(mail.clone());
        Ok(())
    }
}
