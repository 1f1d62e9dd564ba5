'use strict';
(() => {
  const q = new URLSearchParams(window.location.search);
  const issuer = document.body.dataset.issuer;
  const READ_ONLY = 'urn:fhirgate:membership-read-only';
  const $ = (id) => document.getElementById(id);
  const steps = ['password-form', 'totp-form', 'profile-form', 'done', 'register-form',
    'forgot-form', 'forgot-sent'];
  let login = null;
  // The login request of the last sign-in attempt (without the email and password): sent on
  // to the identity provider start route when the account signs in elsewhere.
  let loginRequest = null;
  let totpPath = '/auth/mfa/verify';
  // The factor the code form checks: `totp` or `email`.
  let factor = 'totp';
  // A registration without a client waits for its project name.
  let pendingProject = null;
  // Without a client the page is its own app (as Medplum's app is): it makes the PKCE pair and
  // redeems the code itself.
  let ownVerifier = null;

  const show = (step) => { for (const id of steps) $(id).hidden = id !== step; };
  // The API keeps Medplum's texts; the page words them for people.
  const WORDING = {
    'Invalid MFA token': 'That authentication code is not valid. Check the time on your device and try the newest code.',
  };
  const fail = (text) => {
    $('error').textContent = WORDING[text] || text;
    $('error').hidden = false;
  };
  const httpUrl = (text) => {
    try {
      const url = new URL(text);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url : null;
    } catch {
      return null;
    }
  };
  const buttons = (disabled) => {
    for (const b of document.querySelectorAll('button')) b.disabled = disabled;
  };
  const base64url = (bytes) =>
    btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

  async function pkcePair() {
    const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
    return { verifier, challenge: base64url(new Uint8Array(digest)) };
  }

  async function post(path, body) {
    $('error').hidden = true;
    buttons(true);
    try {
      const res = await fetch(path, body === undefined ? { credentials: 'same-origin' } : {
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
      next(data);
    } catch {
      fail('The server cannot be reached.');
    } finally {
      buttons(false);
    }
  }

  function next(data) {
    if (typeof data.login === 'string') login = data.login;
    $('password').value = '';
    if (typeof data.code === 'string') return finish(data.code);
    if (data.mfaRequired) {
      totpPath = '/auth/mfa/verify';
      const methods = Array.isArray(data.mfaMethods) ? data.mfaMethods : ['totp'];
      factor = methods.includes('totp') ? 'totp' : 'email';
      $('email-code').hidden = !methods.includes('email');
      $('enroll').hidden = true;
      show('totp-form');
      $('token').focus();
      return;
    }
    if (data.mfaEnrollRequired) {
      totpPath = '/auth/mfa/login-enroll';
      factor = 'totp';
      $('email-code').hidden = true;
      enrolment(data);
      $('enroll').hidden = false;
      show('totp-form');
      $('token').focus();
      return;
    }
    if (Array.isArray(data.memberships) && data.memberships.length === 0 && pendingProject) {
      // A new account without a client: its first project, then the code.
      const projectName = pendingProject;
      pendingProject = null;
      return post('/auth/newproject', { login, projectName });
    }
    if (Array.isArray(data.memberships) && data.memberships.length === 0) {
      $('done-label').textContent =
        'Your account is ready. A project administrator must add you before you can sign in.';
      $('code').textContent = '';
      show('done');
      return;
    }
    if (Array.isArray(data.memberships)) return choose(data.memberships);
    const external = httpUrl(data.authorizeUrl || '');
    if (external && external.origin === window.location.origin) {
      // Our start route: it creates the login from this request, binds it to this browser
      // and sends us to the provider, which sends us back here with a one-time `login`.
      // Keep our PKCE verifier for then.
      if (ownVerifier) sessionStorage.setItem('fhirgate-verifier', ownVerifier);
      external.searchParams.set('state', JSON.stringify(loginRequest || {}));
      window.location.assign(external.href);
      return;
    }
    fail('Unexpected answer from the server.');
  }

  // The enrolment step: the QR code to scan and, for typing in, the key in groups of four.
  function enrolment(data) {
    const qr = typeof data.enrollQrCode === 'string' && data.enrollQrCode.startsWith('data:image/png;base64,')
      ? data.enrollQrCode : '';
    $('enroll-qr').hidden = !qr;
    if (qr) $('enroll-qr').src = qr;
    let key = '';
    try {
      key = new URL(data.enrollUri || '').searchParams.get('secret') || '';
    } catch {
      key = '';
    }
    $('enroll-key').textContent = (key.match(/.{1,4}/g) || []).join(' ');
  }

  function choose(memberships) {
    const list = $('profiles');
    list.replaceChildren();
    memberships.forEach((m, i) => {
      const label = document.createElement('label');
      const input = document.createElement('input');
      input.type = 'radio';
      input.name = 'profile';
      input.value = String(m.id);
      input.checked = i === 0;
      const reference = (m.profile && m.profile.reference) || String(m.id);
      const name = (m.profile && m.profile.display) || reference;
      const project = (m.project && (m.project.display || m.project.reference)) || '';
      const readOnly = Array.isArray(m.extension) && m.extension.some(
        (e) => e && e.url === READ_ONLY && e.valueBoolean === true);
      const text = document.createElement('span');
      const strong = document.createElement('strong');
      strong.textContent = name;
      text.append(strong);
      if (project) text.append(document.createTextNode(` in ${project}`));
      if (readOnly) text.append(document.createTextNode(' \u00b7 read-only'));
      if (name !== reference) {
        const small = document.createElement('span');
        small.className = 'muted';
        small.textContent = ` (${reference})`;
        text.append(small);
      }
      label.append(input, text);
      list.append(label);
    });
    show('profile-form');
  }

  function finish(code) {
    // Only a login that named a client redirects: the server checked that this redirect URI
    // is registered for it before issuing the code.
    const target = q.get('client_id') ? httpUrl(q.get('redirect_uri') || '') : null;
    if (target) {
      target.searchParams.append('code', code);
      const state = q.get('state');
      if (state !== null) target.searchParams.append('state', state);
      target.searchParams.append('iss', issuer);
      window.location.assign(target.href);
      return;
    }
    if (ownVerifier) return redeem(code);
    $('done-label').textContent = 'Signed in. The authorization code (single use, valid 60 seconds):';
    $('code').textContent = code;
    show('done');
  }

  async function redeem(code) {
    const form = new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      client_id: '',
      code_verifier: ownVerifier,
    });
    try {
      const res = await fetch('/oauth2/token', { method: 'POST', credentials: 'same-origin', body: form });
      const data = await res.json().catch(() => ({}));
      if (!res.ok || typeof data.access_token !== 'string') {
        fail(data.error_description || `The token endpoint answered ${res.status}.`);
        return;
      }
      $('done-label').textContent =
        `Signed in without a client. Access token (${data.scope || 'no scope'}; ` +
        `${data.expires_in} s), for Authorization: Bearer …`;
      $('code').textContent = data.access_token;
      show('done');
    } catch {
      fail('The server cannot be reached.');
    }
  }

  // The login request of this page: the authorization request's own parameters (checked
  // again by the server) with a client; without one, the scope and the page's own PKCE pair.
  async function requestFields() {
    const body = { clientId: q.get('client_id') || '' };
    const client = Boolean(q.get('client_id'));
    const fields = client
      ? {
          redirectUri: 'redirect_uri',
          scope: 'scope',
          nonce: 'nonce',
          codeChallenge: 'code_challenge',
          codeChallengeMethod: 'code_challenge_method',
          launch: 'launch',
          state: 'state',
        }
      : { scope: 'scope' };
    for (const [field, name] of Object.entries(fields)) {
      const value = q.get(name);
      if (value) body[field] = value;
    }
    if (!client) {
      if (!window.crypto || !crypto.subtle) {
        fail('This browser cannot make a PKCE challenge here: open the page through /oauth2/authorize.');
        return null;
      }
      const pair = await pkcePair();
      ownVerifier = pair.verifier;
      body.codeChallenge = pair.challenge;
      body.codeChallengeMethod = 'S256';
    }
    loginRequest = { ...body };
    return body;
  }

  $('password-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = await requestFields();
    if (!body) return;
    body.email = $('email').value;
    body.password = $('password').value;
    post('/auth/login', body);
  });

  $('register-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = await requestFields();
    if (!body) return;
    if (!q.get('client_id')) {
      const name = $('project-name').value.trim();
      if (name.length < 4) {
        fail('Project name must be between 4 and 72 characters');
        return;
      }
      pendingProject = name;
    }
    body.firstName = $('first-name').value;
    body.lastName = $('last-name').value;
    body.email = $('register-email').value;
    body.password = $('register-password').value;
    $('register-password').value = '';
    post('/auth/newuser', body);
  });

  $('forgot-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    $('error').hidden = true;
    buttons(true);
    try {
      const res = await fetch('/auth/resetpassword', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email: $('forgot-email').value }),
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) {
        const issue = Array.isArray(data.issue) ? data.issue[0] : null;
        fail((issue && issue.details && issue.details.text) || `The server answered ${res.status}.`);
        return;
      }
      show('forgot-sent');
    } catch {
      fail('The server cannot be reached.');
    } finally {
      buttons(false);
    }
  });

  const goTo = (step, focus) => (event) => {
    event.preventDefault();
    $('error').hidden = true;
    show(step);
    if (focus) $(focus).focus();
  };
  $('to-register').addEventListener('click', goTo('register-form', 'first-name'));
  $('to-forgot').addEventListener('click', goTo('forgot-form', 'forgot-email'));
  for (const a of document.querySelectorAll('.to-sign-in')) {
    a.addEventListener('click', goTo('password-form', 'email'));
  }
  $('project-field').hidden = Boolean(q.get('client_id'));

  $('send-code').addEventListener('click', async () => {
    $('error').hidden = true;
    const res = await fetch('/auth/mfa/send-email', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ login }),
    }).catch(() => null);
    if (!res || !res.ok) {
      fail('The code could not be sent. Try again in a few minutes.');
      return;
    }
    factor = 'email';
    $('token').focus();
  });

  $('totp-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    $('token').value = '';
    post(totpPath, totpPath === '/auth/mfa/verify' ? { login, token, method: factor } : { login, token });
  });

  $('profile-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = document.querySelector('input[name="profile"]:checked');
    if (chosen) post('/auth/profile', { login, profile: chosen.value });
  });

  // Back from an identity provider with a one-time reference: this browser (it holds the
  // binding cookie) picks the login up, once, and continues where it stands.
  const returning = q.get('login');
  if (returning) {
    login = returning;
    ownVerifier = sessionStorage.getItem('fhirgate-verifier');
    sessionStorage.removeItem('fhirgate-verifier');
    history.replaceState(null, '', window.location.pathname);
    post(`/auth/login/${encodeURIComponent(returning)}`);
  }
})();
