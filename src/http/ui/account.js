'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const { kind, id, secret } = document.body.dataset;
  // The secret stays out of the address bar and the history from here on.
  history.replaceState(null, '', '/');
  const form = kind === 'verify' ? $('verify-form') : $('set-form');
  form.hidden = false;
  const fail = (text) => {
    $('error').textContent = text;
    $('error').hidden = false;
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    $('error').hidden = true;
    const button = form.querySelector('button');
    button.disabled = true;
    const path = kind === 'verify' ? '/auth/verifyemail' : '/auth/setpassword';
    const body = kind === 'verify' ? { id, secret } : { id, secret, password: $('new-password').value };
    try {
      const res = await fetch(path, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) {
        const issue = Array.isArray(data.issue) ? data.issue[0] : null;
        fail((issue && issue.details && issue.details.text) || `The server answered ${res.status}.`);
        return;
      }
      form.hidden = true;
      $('done-text').textContent = kind === 'verify'
        ? 'Your email address is verified.'
        : 'Your password is set. Every other session of your account was signed out.';
      $('done').hidden = false;
    } catch {
      fail('The server cannot be reached.');
    } finally {
      button.disabled = false;
    }
  });
})();
