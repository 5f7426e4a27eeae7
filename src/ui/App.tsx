import * as Comlink from 'comlink';
import { useEffect } from 'react';
import { useUi } from '../store/ui';
import { Header, PrivacyBar } from './components/Header';
import { Toasts } from './components/Toasts';
import { ViewBoundary } from './components/common';
import { DataOwnerView } from './views/DataOwnerView';
import { ModelOwnerView } from './views/ModelOwnerView';
import { ResearcherView } from './views/ResearcherView';
import { reportError, studio } from './studio';

export function App() {
  const view = useUi((s) => s.view);
  const setBackend = useUi((s) => s.setBackend);
  const setCapabilities = useUi((s) => s.setCapabilities);

  useEffect(() => {
    // Both run in the worker; the UI renders immediately and fills the badge when they answer.
    // `?gpu=software` runs jobs on a software WebGPU adapter (SwiftShader) too: slow, but it exercises the GPU path.
    const allowSoftwareAdapter = new URLSearchParams(location.search).get('gpu') === 'software';
    studio()
      .probeBackend({ allowSoftwareAdapter })
      .then(setBackend, (e) => {
        setBackend({ kind: 'cpu', source: 'probe', reason: `backend probe failed: ${String(e)}` });
      });
    // A lost GPU device moves the jobs to the CPU: the badge follows.
    studio()
      .watchBackend(Comlink.proxy(setBackend))
      .catch((e: unknown) => reportError(e));
    studio()
      .capabilities()
      .then(setCapabilities, (e) => reportError(e));
  }, [setBackend, setCapabilities]);

  // Dropping a file outside a drop zone must not navigate away from the app.
  useEffect(() => {
    const stop = (e: DragEvent) => {
      if (!(e.target as HTMLElement | null)?.closest?.('.drop')) {
        e.preventDefault();
        if (e.type === 'drop' && e.dataTransfer?.files.length) {
          useUi.getState().pushToast({
            level: 'error',
            file: e.dataTransfer.files[0]!.name,
            message: 'dropped outside a drop zone: drop it on one of the boxes marked for models, packages or datasets',
          });
        }
      }
    };
    window.addEventListener('dragover', stop);
    window.addEventListener('drop', stop);
    return () => {
      window.removeEventListener('dragover', stop);
      window.removeEventListener('drop', stop);
    };
  }, []);

  return (
    <div className="app">
      {/* Header and privacy statement stay in view while scrolling: the statement must always be visible. */}
      <div className="app-top">
        <Header />
        <PrivacyBar />
      </div>
      <main className="main">
        {/* Views stay mounted (hidden) so switching tabs keeps charts and form state. */}
        <div hidden={view !== 'model'}>
          <ViewBoundary name="Model owner">
            <ModelOwnerView />
          </ViewBoundary>
        </div>
        <div hidden={view !== 'data'}>
          <ViewBoundary name="Data owner">
            <DataOwnerView />
          </ViewBoundary>
        </div>
        <div hidden={view !== 'research'}>
          <ViewBoundary name="Researcher">
            <ResearcherView />
          </ViewBoundary>
        </div>
      </main>
      <Toasts />
    </div>
  );
}
