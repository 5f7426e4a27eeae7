import { useEffect } from 'react';
import { useUi, type Toast } from '../../store/ui';

function ToastItem({ t }: { t: Toast }) {
  const dismiss = useUi((s) => s.dismissToast);
  useEffect(() => {
    // Errors stay until dismissed (the user must be able to read the file name); info fades.
    if (t.level !== 'info') return;
    const h = setTimeout(() => dismiss(t.id), 5000);
    return () => clearTimeout(h);
  }, [t, dismiss]);
  return (
    <div className={`toast ${t.level}`} role={t.level === 'error' ? 'alert' : 'status'} data-testid="toast">
      <div className="toast-text">
        {t.file ? (
          <strong className="toast-file">
            {t.file}
            {t.line ? `:${t.line}` : ''}
          </strong>
        ) : null}
        <span>{t.message}</span>
      </div>
      <button className="close" aria-label="Dismiss" onClick={() => dismiss(t.id)}>
        ×
      </button>
    </div>
  );
}

export function Toasts() {
  const toasts = useUi((s) => s.toasts);
  return (
    <div className="toasts">
      {toasts.map((t) => (
        <ToastItem key={t.id} t={t} />
      ))}
    </div>
  );
}
