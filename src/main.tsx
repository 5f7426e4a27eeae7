import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './ui/App';
import './ui/styles.css';
import { ensureIsolation } from './faults/isolation';

// The security-headers service worker first (it may reload the page once); then the app.
void ensureIsolation().finally(() => {
  createRoot(document.getElementById('root')!).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
});
